"""Issue #17 in the browser: a municipal workbook (a legend sheet first, title rows, a header that
only partly matches) goes through CSV一括登録 (sheet choice → mapping → preview → the typed
brigade name before deleting the missing sources), and 復元's 「元に戻す」 brings them back."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from openpyxl import Workbook
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import Engine

from services import pre_change, water_sources
from tests.e2e.conftest import account, submit_login
from tests.factories import admin, make_member, make_tenant, rank_id
from tests.water_factories import make_source

pytestmark = pytest.mark.e2e

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CODES = [f"W-{n:02d}" for n in range(1, 13)]
KEPT = CODES[0]
NEW = "W-13"
HEADER = ["水利番号", "種　別", "緯度", "経度", "設置年度"]
PRESELECTED = {"水利番号": "水利番号", "種　別": "種別", "緯度": "緯度", "経度": "経度"}


@dataclass(frozen=True)
class Brigade:
    tenant_id: uuid.UUID
    name: str
    admin_login: str


@pytest.fixture
def brigade(engine: Engine) -> Brigade:
    """A brigade of its own (the test deletes its sources): a 団長 who signs in, 12 sources."""
    name = f"取込消防団{uuid.uuid4().hex[:6]}"
    tenant = make_tenant(name)
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    login_name = account(tenant, chief)
    for code in CODES:
        make_source(tenant, code=code, kind="防火水槽", latitude=36.0, longitude=138.0)
    return Brigade(tenant, name, login_name)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()
    yield context
    context.close()


def municipal_workbook() -> bytes:
    """A legend sheet first; the data under two title rows, with full-width names and a column
    of their own (設置年度): one source kept, one new."""
    book = Workbook()
    legend = book.active
    legend.title = "凡例"
    for row in (["凡例"], ["○ 使用可"], ["× 使用不可"]):
        legend.append(row)
    data = book.create_sheet("防火水槽")
    for row in (
        ["デモ市 防火水槽一覧"],
        ["令和6年4月1日現在"],
        HEADER,
        [KEPT, "防火水槽", 36.0, 138.0, "H10"],
        [NEW, "防火水槽", 36.01, 138.01, "H12"],
    ):
        data.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def codes(brigade: Brigade) -> set[str]:
    return {s.code for s in water_sources.list_water_sources(admin(brigade.tenant_id))}


def idle(page: Page) -> None:
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning")


def open_page(page: Page, label: str) -> None:
    page.get_by_test_id("stSidebar").get_by_role("link", name=label).click()
    expect(page.get_by_role("heading", name=label, exact=True)).to_be_visible()


def test_a_municipal_workbook_deletes_with_the_typed_name_and_undo_brings_it_back(
    context: BrowserContext, base_url: str, brigade: Brigade
):
    page = context.new_page()
    submit_login(page, base_url, brigade.admin_login)
    open_page(page, "CSV一括登録")
    expect(page).to_have_url(re.compile(r"/csv-import$"))
    page.get_by_test_id("stRadio").get_by_text("消防水利", exact=True).click()
    expect(page.get_by_text("消防水利のテンプレート（CSV）")).to_be_visible()
    idle(page)
    # The dropzone's English words are hidden and the Japanese ones, with the real limit, shown
    dropzone = page.get_by_test_id("stFileUploaderDropzone")
    after = "e => getComputedStyle(e, '::after').content"
    assert dropzone.locator("button").evaluate(after) == '"ファイルを選択"'
    limit = page.get_by_test_id("stFileUploaderDropzoneInstructions").evaluate(after)
    assert limit == '"1ファイル 30MB まで（CSV・XLSX）"'
    expect(dropzone.get_by_text("per file")).to_be_hidden()
    expect(dropzone.get_by_text("Upload", exact=True)).to_be_hidden()

    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        files=[{"name": "防火水槽.xlsx", "mimeType": XLSX, "buffer": municipal_workbook()}]
    )

    # The sheet choice starts on the data, and the partial match goes to the mapping step.
    expect(page.get_by_role("combobox", name="シート")).to_have_value("防火水槽")
    expect(page.get_by_text("形式: その他")).to_be_visible()
    expect(page.get_by_text("見出し行: 3行目")).to_be_visible()
    expect(page.get_by_role("spinbutton", name="見出しの行（何行目か）")).to_have_value("3")
    for cell, target in PRESELECTED.items():
        expect(page.get_by_role("combobox", name=f"「{cell}」の列")).to_have_value(target)
    expect(page.get_by_role("combobox", name="「設置年度」の列")).to_have_value("使わない")
    page.get_by_role("button", name="この対応付けで読み込む").click()

    # The preview: one new, one unchanged, eleven missing.
    expect(page.get_by_text("シート「防火水槽」・見出し 3行目")).to_be_visible()
    metrics = page.get_by_test_id("stMetric")
    expect(metrics.filter(has_text="新規")).to_contain_text("1件")
    expect(metrics.filter(has_text="エラー")).to_contain_text("0件")
    expect(page.get_by_text("ファイルにない登録済みのデータが 11件あります")).to_be_visible()
    apply = page.get_by_role("button", name="この内容で登録する")
    expect(apply).to_be_disabled()  # nothing chosen for the missing rows yet

    page.get_by_text("削除（廃止）する", exact=True).click()
    expect(page.get_by_text("この登録で削除（廃止） 11件になります（現在 12件）")).to_be_visible()
    expect(
        page.get_by_text("登録の前に、この消防団のデータを自動でバックアップします")
    ).to_be_visible()
    name_box = page.get_by_role("textbox", name="確認のため消防団名を入力してください")
    expect(apply).to_be_disabled()
    name_box.fill("違う消防団")
    name_box.press("Enter")
    expect(page.get_by_text("入力された名前が消防団名と一致しません。")).to_be_visible()
    expect(apply).to_be_disabled()
    name_box.fill(brigade.name)
    name_box.press("Enter")
    expect(page.get_by_text("入力された名前が消防団名と一致しません。")).to_have_count(0)
    expect(apply).to_be_enabled()
    idle(page)
    apply.click()

    notice = page.get_by_test_id("stAlertContentSuccess")
    expect(notice).to_contain_text("消防水利を登録しました: 新規 1件、変更 0件、変更なし 1件")
    expect(notice).to_contain_text("削除（廃止）する 11件")
    expect(notice).to_contain_text("元に戻す")
    assert codes(brigade) == {KEPT, NEW}

    # 復元: the import's automatic backup, undone behind the dialog.
    open_page(page, "復元")
    [entry] = pre_change.list_backups(admin(brigade.tenant_id))
    assert entry.reason == "CSV一括登録（消防水利）: 削除（廃止） 11件"
    # the reason stands in the list (a data grid drawn on a canvas) and beside the button
    expect(page.get_by_test_id("stMarkdown").filter(has_text=entry.reason)).to_be_visible()
    idle(page)
    page.get_by_role("button", name="元に戻す").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("の前の状態に戻します")
    assert codes(brigade) == {KEPT, NEW}  # only asked so far
    dialog.get_by_role("button", name="実行する").click()

    expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text(
        "の変更前の状態に戻しました"
    )
    expect(dialog).to_have_count(0)
    assert codes(brigade) == set(CODES)
