"""#18 in the browser: CSV出力・バックアップ makes a backup ZIP that downloads; after a change,
復元 takes that file back through the upload, asks for the brigade's name, and restores it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine

from services import water_sources
from tests.e2e.conftest import account, submit_login
from tests.factories import admin, make_member, make_tenant, rank_id
from tests.water_factories import make_source

pytestmark = pytest.mark.e2e


def codes(tenant_id: uuid.UUID) -> set[str]:
    return {s.code for s in water_sources.list_water_sources(admin(tenant_id))}


def test_a_downloaded_backup_is_restored_through_the_upload(
    browser: Browser, base_url: str, engine: Engine
):
    name = f"復元消防団{uuid.uuid4().hex[:6]}"
    tenant = make_tenant(name)
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    login_name = account(tenant, chief)
    for code in ("B-1", "B-2"):
        make_source(tenant, code=code, latitude=36.0, longitude=138.0)
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    submit_login(page, base_url, login_name)
    sidebar = page.get_by_test_id("stSidebar")

    sidebar.get_by_role("link", name="CSV出力・バックアップ").click()
    page.get_by_role("button", name="バックアップを作成").click()
    download = page.get_by_role("button", name="をダウンロード")
    expect(download).to_be_visible()
    with page.expect_download() as done:
        download.click()
    assert done.value.suggested_filename.startswith(f"{name}_")
    data = Path(done.value.path()).read_bytes()

    make_source(tenant, code="B-3", latitude=36.0, longitude=138.0)  # made after the backup
    assert codes(tenant) == {"B-1", "B-2", "B-3"}

    sidebar.get_by_role("link", name="復元").click()
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        files=[{"name": "backup.zip", "mimeType": "application/zip", "buffer": data}]
    )
    expect(page.get_by_text("検証済み")).to_be_visible()
    apply = page.get_by_role("button", name="復元を実行")
    expect(apply).to_be_disabled()
    box = page.get_by_role(
        "textbox", name=f"確認のため、この消防団の名前「{name}」を入力してください"
    )
    box.fill(name)
    box.press("Enter")
    expect(apply).to_be_enabled()
    apply.click()
    expect(page.get_by_test_id("stAlertContentSuccess").first).to_contain_text("から復元しました")
    assert codes(tenant) == {"B-1", "B-2"}
    context.close()
