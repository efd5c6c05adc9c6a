"""Safe bulk changes through the pages (#17): CSV一括登録 asks for the brigade's name above the
threshold and says a backup comes first; 復元 lists the pre-change backups and 「元に戻す」
brings the retired members back, behind a confirmation."""

from __future__ import annotations

import uuid

from streamlit.testing.v1 import AppTest

from formats import csv_safe, member_csv
from services import member_import, members, pre_change
from services.catalog import MemberStatus, MissingRows
from tests.app_pages.conftest import answer, dialog_lines, page_text, sign_in
from tests.factories import admin, brigade_name, make_tenant

IMPORT = "app_pages/csv_import.py"
RESTORE = "app_pages/restore.py"


def csv_bytes(codes: list[str]) -> bytes:
    rows = [{"member_code": c, "name": f"消防　{c}", "rank": "団員"} for c in codes]
    return csv_safe.encode(
        member_csv.HEADER, [[row.get(c.key, "") for c in member_csv.COLUMNS] for row in rows]
    )


def roster(tenant: uuid.UUID, count: int) -> list[str]:
    codes = [f"M{n:04d}" for n in range(count)]
    found = member_import.preview_member_import(
        admin(tenant), data=csv_bytes(codes), filename="a.csv"
    )
    member_import.apply_member_import(admin(tenant), found, missing=MissingRows.KEEP)
    return codes


def statuses(tenant: uuid.UUID) -> dict[str, MemberStatus]:
    return {m.member_code: m.status for m in members.list_members(admin(tenant))}


def open_page(open_app, token: str, page: str) -> AppTest:
    at = open_app(token)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_retiring_many_needs_the_typed_name_and_undo_brings_them_back(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    codes = roster(tenant, 40)
    at = open_page(open_app, user.token, IMPORT)
    at.file_uploader[0].upload("分団.csv", csv_bytes(codes[:5]), "text/csv").run()
    assert not at.exception, at.exception
    assert any("あなた自身" in i.value for i in at.info)  # the 団長 is not in the file
    at.radio(key="imp_missing_members_0").set_value(MissingRows.RETIRE).run()

    assert any("退団 35件" in w.value for w in at.warning)
    assert any("自動でバックアップ" in i.value for i in at.info)
    box = at.text_input(key="imp_confirm_members_0")
    assert box.label == "確認のため消防団名を入力してください"
    assert at.button(key="imp_apply").disabled
    box.input("違う消防団").run()
    assert at.button(key="imp_apply").disabled
    assert "一致しません" in page_text(at)
    at.text_input(key="imp_confirm_members_0").input(brigade_name(tenant)).run()
    assert not at.button(key="imp_apply").disabled
    at.button(key="imp_apply").click().run()

    assert not at.exception, at.exception
    notice = at.success[0].value
    assert "退団にする 35件" in notice and "元に戻す" in notice
    assert list(statuses(tenant).values()).count(MemberStatus.RETIRED) == 35
    assert statuses(tenant)[user.member.member_code] == MemberStatus.ACTIVE

    at = open_page(open_app, user.token, RESTORE)
    listed = at.dataframe[0].value
    assert list(listed["内容"]) == ["CSV一括登録（団員）: 退団 35名"]
    [entry] = pre_change.list_backups(admin(tenant))
    at.button(key=f"undo_{entry.id}").click().run()
    assert not at.exception, at.exception
    assert statuses(tenant)[codes[-1]] == MemberStatus.RETIRED  # only asked so far
    assert "前の状態に戻します" in dialog_lines(at)[0]
    answer(at, "実行する")

    assert not at.exception, at.exception
    assert "変更前の状態に戻しました" in at.success[0].value
    assert set(statuses(tenant).values()) == {MemberStatus.ACTIVE}


def test_a_few_retirements_need_no_name_and_the_list_starts_empty(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    at = open_page(open_app, user.token, RESTORE)
    assert "自動バックアップはありません。" in page_text(at)

    codes = roster(tenant, 200)
    at = open_page(open_app, user.token, IMPORT)
    at.file_uploader[0].upload("a.csv", csv_bytes(codes[1:]), "text/csv").run()
    at.radio(key="imp_missing_members_0").set_value(MissingRows.RETIRE).run()
    assert not any(t.key == "imp_confirm_members_0" for t in at.text_input)
    assert any("自動でバックアップ" in i.value for i in at.info)
    assert not at.button(key="imp_apply").disabled


def test_another_brigade_sees_none_of_the_backups(open_app):
    tenant, other = make_tenant(), make_tenant()
    codes = roster(tenant, 20)
    found = member_import.preview_member_import(
        admin(tenant), data=csv_bytes(codes[:19]), filename="a.csv"
    )
    member_import.apply_member_import(admin(tenant), found, missing=MissingRows.RETIRE)
    at = open_page(open_app, sign_in(other).token, RESTORE)
    assert "自動バックアップはありません。" in page_text(at)
