"""復元 page: a backup made, the brigade changed, the backup restored through the page; the
manifest and per-file preview shown; what becomes of the 出動 data (sources' addresses and
passwords, the メール受信ログ, a version 1 backup without it); the other-brigade checkbox only
for another brigade's backup; the typed brigade name; passwords and damaged files; who gets the
page."""

from __future__ import annotations

import io
import uuid

import pyzipper
from streamlit.testing.v1 import AppTest

from core.timefmt import to_jst
from formats import backup as backup_format
from services import backup, members, water_sources
from services.catalog import MailTransport, MemberStatus, MemberUpdate
from services.dispatch import incidents, sources
from services.tenants import list_tenants
from tests.app_pages.conftest import nav_registers, page_text, run_page_directly, sign_in
from tests.dispatch_factories import make_source as make_mail_source
from tests.factories import PLATFORM, admin, make_member, make_tenant
from tests.water_factories import make_source

PAGE = "app_pages/restore.py"
PASSWORD = "hikeshi-backup-2026"


def open_restore(open_app, token: str) -> AppTest:
    at = open_app(token)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["復元"]
    return at


def upload(at: AppTest, data: bytes, password: str = "") -> AppTest:
    if password:
        at.text_input[0].input(password)
    at.file_uploader[0].upload("backup.zip", data, "application/zip").run()
    assert not at.exception, at.exception
    return at


def tenant_name(tenant: uuid.UUID) -> str:
    return next(t.name for t in list_tenants(PLATFORM) if t.id == tenant)


def confirm_box(at: AppTest):
    return next(t for t in at.text_input if t.label.startswith("確認のため"))


def restore_button(at: AppTest):
    return at.button(key="rst_apply")


def test_backup_then_changes_then_restore_through_the_page(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    kept = make_member(tenant, affiliation="第1分団")
    make_source(tenant, code="H-1", memo="元のメモ")
    fire = incidents.create_incident(admin(tenant), incidents.IncidentInput(kind="建物火災"))
    made = backup.create_backup(admin(tenant), password=PASSWORD)
    members.update_member(
        admin(tenant),
        kept.id,
        data=MemberUpdate(affiliation="第9分団"),
        expected_version=kept.version,
    )
    later = make_member(tenant)
    source = water_sources.list_water_sources(admin(tenant))[0]
    water_sources.delete_water_source(admin(tenant), source.id, expected_version=source.version)
    incidents.create_incident(admin(tenant), incidents.IncidentInput(kind="訓練"))
    added = make_mail_source(tenant, name="後から登録した本部")

    at = upload(open_restore(open_app, user.token), made.data, PASSWORD)

    shown = {m.label: m.value for m in at.metric}
    assert shown["消防団"] == tenant_name(tenant)
    assert shown["作成日時（JST）"] == to_jst(made.manifest.created_at)
    assert shown["パスワード"] == "あり"
    assert "検証済み" in page_text(at)
    assert not at.checkbox  # this brigade's own backup: no other-brigade choice
    assert [t.label for t in at.tabs] == list(backup.ENTITY_LABELS.values())
    warnings = [w.value for w in at.warning]
    assert "バックアップにない 1件は退団にします。" in warnings
    assert "バックアップにない 1件は削除します。" in warnings  # the incident added since
    assert any(w.startswith("バックアップにない 1件は無効にします") for w in warnings)
    assert backup.MAIL_LOG_KEPT in [i.value for i in at.info]
    assert restore_button(at).disabled

    confirm_box(at).input("違う名前").run()
    assert restore_button(at).disabled
    confirm_box(at).input(tenant_name(tenant)).run()
    assert not restore_button(at).disabled
    restore_button(at).click().run()

    assert not at.exception, at.exception
    assert "のバックアップから復元しました。" in at.success[0].value
    result = at.dataframe[0].value.set_index("内容")
    assert result.loc["消防水利", "新規"] == 1 and result.loc["団員名簿", "削除・退団"] == 1
    assert result.loc["災害出動の事案", "削除・退団"] == 1
    roster = {m.member_code: m for m in members.list_members(admin(tenant))}
    assert roster[kept.member_code].affiliation == "第1分団"
    assert roster[later.member_code].status == MemberStatus.RETIRED
    assert roster[user.member.member_code].status == MemberStatus.ACTIVE
    restored = water_sources.list_water_sources(admin(tenant))
    assert [(s.code, s.memo) for s in restored] == [("H-1", "元のメモ")]
    assert [i.id for i in incidents.list_incidents(admin(tenant))] == [fire.id]
    (source,) = [s for s in sources.list_sources(admin(tenant)) if s.id == added.id]
    assert not source.active
    assert not at.file_uploader[0].value  # a fresh uploader: nothing is restored twice


def test_the_preview_says_what_becomes_of_the_dispatch_data(open_app):
    """Another brigade's sources: a new receiving address, an IMAP password to enter again; the
    メール受信ログ stays as it is."""
    mine, theirs = make_tenant(), make_tenant()
    user = sign_in(mine)
    make_mail_source(theirs, name="東消防本部")
    make_mail_source(
        theirs,
        name="西消防本部",
        transport=MailTransport.IMAP,
        imap_host="imap.example.jp",
        imap_username="brigade",
        imap_password="imap-password-1",
    )
    incidents.create_incident(admin(theirs), incidents.IncidentInput(kind="建物火災"))
    made = backup.create_backup(admin(theirs))

    at = upload(open_restore(open_app, user.token), made.data)

    contents = at.dataframe[0].value.set_index("内容")["件数"]
    assert (contents["出動メール設定"], contents["災害出動の事案"]) == (2, 1)
    assert {"出動メール設定", "災害出動の事案", "事案の経過"} <= {t.label for t in at.tabs}
    notes = [i.value for i in at.info]
    assert backup.MAIL_LOG_KEPT in notes
    assert backup.CREDENTIALS_NOT_IN_BACKUP in notes
    assert backup.NEW_ADDRESS.format(name="東消防本部") in notes
    assert backup.PASSWORD_NEEDED.format(name="西消防本部") in notes
    assert "メール受信ログは復元しません" in page_text(at)


def test_a_version_1_backup_says_the_dispatch_data_stays(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    made = backup.create_backup(admin(tenant))
    files = backup_format.read_zip(made.data).files
    old = {name: files[name] for name in backup_format.VERSION_FILES[1]}
    manifest = backup_format.build_manifest(
        old,
        tenant_id=tenant,
        brigade=tenant_name(tenant),
        created_at=made.manifest.created_at,
        app_version="0.1.0",
        format_version=1,
    )
    kept = incidents.create_incident(admin(tenant), incidents.IncidentInput(kind="建物火災"))

    at = upload(
        open_restore(open_app, user.token), backup_format.write_zip(manifest, old, password=None)
    )

    assert backup.NO_DISPATCH.format(version=1) in [i.value for i in at.info]
    assert "出動メール設定" not in {t.label for t in at.tabs}
    assert "出動メール設定" not in set(at.dataframe[0].value["内容"])
    confirm_box(at).input(tenant_name(tenant)).run()
    restore_button(at).click().run()
    assert not at.exception, at.exception
    assert "のバックアップから復元しました。" in at.success[0].value
    assert "災害出動の事案" not in set(at.dataframe[0].value["内容"])
    assert [i.id for i in incidents.list_incidents(admin(tenant))] == [kept.id]


def test_another_brigades_backup_needs_the_explicit_checkbox(open_app):
    mine, theirs = make_tenant(), make_tenant()
    user = sign_in(mine)
    sign_in(theirs)
    made = backup.create_backup(admin(theirs))

    at = upload(open_restore(open_app, user.token), made.data)

    (box,) = at.checkbox
    assert tenant_name(theirs) in box.label and tenant_name(mine) in box.label
    assert box.value is False
    confirm_box(at).input(tenant_name(mine)).run()
    assert restore_button(at).disabled
    at.checkbox[0].check().run()
    assert not restore_button(at).disabled


def test_password_is_asked_for_and_a_wrong_one_is_refused(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    made = backup.create_backup(admin(tenant), password=PASSWORD)

    at = upload(open_restore(open_app, user.token), made.data)
    assert any("パスワードで保護されています" in e.value for e in at.error)
    assert not at.metric

    at.text_input[0].input("wrong-password-123").run()
    assert [e.value for e in at.error] == ["パスワードが違います。"]

    at.text_input[0].input(PASSWORD).run()
    assert not at.error
    assert {m.label for m in at.metric} >= {"消防団", "作成日時（JST）"}


def test_an_edited_backup_is_refused_before_anything_is_planned(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    made = backup.create_backup(admin(tenant))
    source = pyzipper.ZipFile(io.BytesIO(made.data))
    out = io.BytesIO()
    with pyzipper.ZipFile(out, "w") as edited:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "members.csv":
                data = data.replace(
                    b"\r\n", b"\r\nX-1,\xe5\x81\xbd,,\xe5\x9b\xa3\xe5\x93\xa1\r\n", 1
                )
            edited.writestr(info.filename, data)

    at = upload(open_restore(open_app, user.token), out.getvalue())

    assert any("SHA-256 不一致" in e.value for e in at.error)
    assert not at.metric
    assert not [b for b in at.button if b.key == "rst_apply"]


def test_rank_without_restore_gets_no_page_and_a_direct_run_refuses(open_app):
    tenant = make_tenant()
    user = sign_in(tenant, rank="分団長")
    assert not nav_registers(open_app(user.token), PAGE)

    direct = run_page_directly(PAGE, user.token)
    assert not direct.exception, direct.exception
    assert [e.value for e in direct.error] == ["この画面を使う権限がありません。"]
    assert not direct.file_uploader
    assert nav_registers(open_app(sign_in(tenant, rank="副団長").token), PAGE)
