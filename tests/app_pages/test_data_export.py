"""CSV出力・バックアップ page: the CSV files it hands out decode and import back unchanged, in
UTF-8 and Shift_JIS; characters Shift_JIS cannot hold are named by row and column; the backup
opens with its password; who gets the page."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from formats import backup as backup_format
from formats import csv_safe
from services import member_import, water_import
from services.catalog import RowStatus
from tests.app_pages.conftest import nav_registers, run_page_directly, sign_in
from tests.factories import admin, make_member, make_tenant
from tests.water_factories import make_source

PAGE = "app_pages/data_export.py"
PASSWORD = "hikeshi-backup-2026"


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The bytes behind each download button's URL. AppTest's media store lives for one run
    only, so what the page hands to it is recorded on the way in."""
    stored: dict[str, bytes] = {}
    original = MediaFileManager.add

    def add(self, data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        url = original(self, data, mimetype, coordinates, file_name, is_for_static_download)
        stored[url] = data
        return url

    monkeypatch.setattr(MediaFileManager, "add", add)
    return stored


def download(at: AppTest, stored: dict[str, bytes], label_start: str) -> bytes:
    (button,) = [b for b in at.get("download_button") if b.proto.label.startswith(label_start)]
    return stored[button.proto.url]


def open_export(open_app: Callable[..., AppTest], token: str) -> AppTest:
    at = open_app(token)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["CSV出力・バックアップ"]
    return at


def only_unchanged(preview) -> bool:
    counts = preview.counts
    return preview.ready and counts[RowStatus.UNCHANGED] == len(preview.rows) > 0


def test_member_csv_in_utf8_decodes_and_imports_back_unchanged(open_app, downloads):
    tenant = make_tenant()
    user = sign_in(tenant)
    colleague = make_member(tenant, notes="=SUM(A1)", affiliation="第2分団")
    at = open_export(open_app, user.token)
    assert not at.get("download_button")  # files are made on request, not on every run

    at.button(key="exp_make_members").click().run()

    data = download(at, downloads, "members_")
    assert data.startswith(csv_safe.BOM.encode())
    rows = csv_safe.decode(data)
    assert {colleague.member_code, user.member.member_code} <= {row[0] for row in rows[1:]}
    assert "'=SUM(A1)" in data.decode("utf-8-sig")  # neutralised in the file, restored on reading
    preview = member_import.preview_member_import(admin(tenant), data=data, filename="m.csv")
    assert only_unchanged(preview)


def test_water_csv_in_shift_jis_decodes_and_imports_back_unchanged(open_app, downloads):
    tenant = make_tenant()
    user = sign_in(tenant)
    make_source(tenant, code="H-1", memo="駅前ロータリー北側")
    make_source(tenant, code="H-2", kind="消火栓", capacity_m3=None, drop_m=None, depth_m=None)
    at = open_export(open_app, user.token)

    at.radio(key="exp_encoding").set_value("cp932").run()
    at.button(key="exp_make_water_sources").click().run()

    data = download(at, downloads, "water_sources_")
    assert "駅前ロータリー北側" in data.decode("cp932")
    preview = water_import.preview_water_import(admin(tenant), data=data, filename="w.csv")
    assert preview.encoding == "Shift_JIS（CP932）"
    assert only_unchanged(preview)


def test_characters_shift_jis_cannot_hold_are_shown_by_row_and_column(open_app, downloads):
    tenant = make_tenant()
    user = sign_in(tenant)
    make_member(tenant, member_code="Z-9", name="𠮷田　一郎")
    at = open_export(open_app, user.token)

    at.radio(key="exp_encoding").set_value("cp932").run()
    at.button(key="exp_make_members").click().run()

    assert not at.exception, at.exception
    assert "Shift_JIS（CP932）で表せない文字が 1箇所" in at.error[0].value
    problems = at.dataframe[0].value
    assert list(problems.columns) == ["対象", "列", "文字"]
    assert list(problems.iloc[0]) == ["団員番号 Z-9", "氏名", "𠮷"]
    assert not at.get("download_button")

    at.radio(key="exp_encoding").set_value("utf-8").run()
    at.button(key="exp_make_members").click().run()
    assert "𠮷田　一郎" in download(at, downloads, "members_").decode("utf-8-sig")


def test_backup_with_a_password_opens_with_it(open_app, downloads):
    tenant = make_tenant()
    user = sign_in(tenant)
    make_member(tenant)
    make_source(tenant, code="H-1")
    at = open_export(open_app, user.token)

    at.text_input[0].input(PASSWORD)
    at.text_input[1].input(PASSWORD)
    at.button[-1].click().run()

    assert not at.exception, at.exception
    data = download(at, downloads, "テスト消防団")  # <brigade name>_<JST time>.zip
    with pytest.raises(backup_format.PasswordRequired):
        backup_format.read_zip(data)
    opened = backup_format.read_zip(data, password=PASSWORD)
    assert opened.encrypted and opened.manifest.tenant_id == tenant
    assert opened.manifest.rows[backup_format.MEMBERS] == 2
    assert opened.manifest.rows[backup_format.WATER_SOURCES] == 1
    counts = dict(at.dataframe[-1].value.itertuples(index=False))
    assert counts["団員名簿"] == 2 and counts["消防水利"] == 1


@pytest.mark.parametrize(
    ("password", "again", "message"),
    [
        (PASSWORD, PASSWORD + "x", "パスワードと確認用のパスワードが一致しません。"),
        ("short", "short", "12文字以上"),
    ],
)
def test_backup_password_mistakes_are_refused(open_app, downloads, password, again, message):
    at = open_export(open_app, sign_in(make_tenant()).token)

    at.text_input[0].input(password)
    at.text_input[1].input(again)
    at.button[-1].click().run()

    assert not at.exception, at.exception
    assert message in at.error[0].value
    assert not at.get("download_button")


def test_rank_without_csv_export_gets_no_page_and_a_direct_run_refuses(open_app):
    tenant = make_tenant()
    user = sign_in(tenant, rank="団員")
    assert not nav_registers(open_app(user.token), PAGE)

    direct = run_page_directly(PAGE, user.token)
    assert not direct.exception, direct.exception
    assert [e.value for e in direct.error] == ["この画面を使う権限がありません。"]
    assert not direct.button
    assert nav_registers(open_app(sign_in(tenant, rank="副分団長").token), PAGE)
