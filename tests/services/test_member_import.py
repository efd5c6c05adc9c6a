"""Member CSV import and export on real databases: preview then apply, new / changed /
unchanged rows, rows missing from the file, other tenants, permissions (including the own-所属
narrowing and the lock-out guard), bad input, encodings, atomicity, the round trip and the
audit record."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.actor import Actor
from formats import csv_safe, member_csv
from formats.member_csv import COLUMNS
from models import MemberPublic, MemberUpdate
from models.enums import Function, Level, MemberStatus
from services import member_import as mi
from services import members, permissions, roles
from services.audit_verify import verify_chain
from services.base import Tx
from services.db import unit_of_work
from services.errors import PermissionDenied, ValidationError
from services.imports import FieldChange, ImportPreview, MissingRows, RowStatus
from services.member_import import planning, writing
from services.permissions import ADMIN_REQUIRED, CellChange, Grant
from services.signin import sessions
from tests.factories import (
    actor_with,
    admin,
    brigade_name,
    last_audit_seq,
    make_member,
    make_tenant,
    open_member_session,
    plain_members_hold_nothing,
    rank_id,
)

KEYS = tuple(column.key for column in COLUMNS)
# What a 分団長 holds by default: CSV一括登録 and 団員名簿 編集, and enough elsewhere to give the
# ranks and roles these files name (the ceiling, services.members.ceiling).
# (アカウント管理 only to 閲覧: suspending through a file needs 編集).
IMPORTER = permissions.DEFAULT_RANK_MATRIX["分団長"] | {Function.MEMBER_ACCOUNTS: Level.VIEW}
EXPORTER = {Function.CSV_EXPORT: Level.VIEW, Function.ROSTER: Level.VIEW}


@pytest.fixture(autouse=True)
def _plain_members_hold_nothing(tenant):
    """The synthetic importers here hold only what each test is about (see the factory)."""
    plain_members_hold_nothing(tenant)


def csv_file(rows: list[dict[str, str]], *, keys: tuple[str, ...] = KEYS) -> bytes:
    headers = [member_csv.HEADERS[key] for key in keys]
    return csv_safe.encode(headers, [[row.get(key, "") for key in keys] for row in rows])


def row(code: str, **cells: str) -> dict[str, str]:
    return {"member_code": code, "name": f"消防　{code}", "rank": "団員", **cells}


def roster(tenant_id: uuid.UUID) -> list[MemberPublic]:
    return sorted(members.list_members(admin(tenant_id)), key=lambda m: m.member_code)


def table(tenant_id: uuid.UUID) -> list[dict[str, str]]:
    """The roster as the export writes it: what must survive a round trip."""
    return [member_csv.cells(m) for m in roster(tenant_id)]


def by_code(tenant_id: uuid.UUID) -> dict[str, MemberPublic]:
    return {m.member_code: m for m in roster(tenant_id)}


def preview(tenant_id: uuid.UUID, data: bytes, actor: Actor | None = None) -> ImportPreview:
    actor = actor or actor_with(tenant_id, IMPORTER)
    return mi.preview_member_import(actor, data=data, filename="団員.csv")


def import_file(
    tenant_id: uuid.UUID,
    data: bytes,
    *,
    missing: MissingRows = MissingRows.KEEP,
    actor: Actor | None = None,
):
    actor = actor or actor_with(tenant_id, IMPORTER)
    planned = mi.preview_member_import(actor, data=data, filename="団員.csv")
    assert planned.ready, [str(e) for e in planned.errors] + planned.file_errors
    return mi.apply_member_import(actor, planned, missing=missing)


def errors_of(planned: ImportPreview) -> list[str]:
    return [str(error) for error in planned.errors]


def make_role(tenant_id: uuid.UUID, name: str, rank: str = "団員") -> uuid.UUID:
    return roles.create_role(admin(tenant_id), name=name, rank_id=rank_id(tenant_id, rank))


def json_details(event) -> dict:
    return json.loads(event.details)


# ---------------------------------------------------------------------------
# Happy path
# ---------------------------------------------------------------------------


def test_preview_then_apply_new_changed_and_unchanged(tenant, watch):
    make_role(tenant, "機関員")
    kept = make_member(tenant, member_code="A1")
    moved = make_member(tenant, member_code="A2")
    exported = mi.export_members_csv(actor_with(tenant, EXPORTER))
    rows = list(csv_safe.decode(exported))
    rows[2][KEYS.index("affiliation")] = "第2分団"
    rows[2][KEYS.index("roles")] = "機関員"
    rows.append(
        ["B1", "山田　花子", "やまだ　はなこ", "班長", "", "第3分団", "", "", "", "", "R2.4.1", ""]
    )
    data = csv_safe.encode(rows[0], rows[1:])
    before = roster(tenant)
    audit = watch(tenant)

    planned = preview(tenant, data)

    assert planned.ready and planned.encoding == "utf-8-sig"
    assert [(p.row, p.code, p.status) for p in planned.rows] == [
        (2, "A1", RowStatus.UNCHANGED),
        (3, "A2", RowStatus.CHANGED),
        (4, "B1", RowStatus.NEW),
    ]
    assert planned.rows[1].changes == (
        FieldChange("役職", "", "機関員"),
        FieldChange("所属", "第1分団", "第2分団"),
    )
    assert planned.missing == []
    assert roster(tenant) == before  # nothing written by the preview
    assert audit.new() == []

    result = mi.apply_member_import(actor_with(tenant, IMPORTER), planned, missing=MissingRows.KEEP)

    assert (result.created, result.updated, result.unchanged, result.retired) == (1, 1, 1, 0)
    after = by_code(tenant)
    assert after["A1"] == kept
    assert (after["A2"].affiliation, after["A2"].role_names) == ("第2分団", ["機関員"])
    assert after["A2"].version == moved.version + 1
    assert after["A2"].name == moved.name  # columns not changed keep their values
    new = after["B1"]
    assert (new.name, new.kana, new.rank_name, new.status) == (
        "山田　花子",
        "ヤマダ　ハナコ",
        "班長",
        MemberStatus.ACTIVE,
    )
    assert new.joined_on.isoformat() == "2020-04-01"


def test_the_import_is_audited_once_without_personal_data(tenant, watch):
    existing = make_member(tenant, member_code="A1", phone="090-1111-2222")
    data = csv_file(
        [
            row("A1", name=existing.name, phone="090-3333-4444", affiliation="第1分団"),
            row("B1", name="秘密　花子", email="hanako@example.jp", address="デモ市1-1"),
        ],
        keys=("member_code", "name", "rank", "phone", "email", "address", "affiliation"),
    )
    audit = watch(tenant)
    import_file(tenant, data, missing=MissingRows.RETIRE)
    (event,) = audit.new()
    assert (event.category, event.action, event.outcome) == (
        "operation",
        "member.import",
        "success",
    )
    details = json_details(event)
    assert details == {
        "filename": "団員.csv",
        "sha256": hashlib.sha256(data).hexdigest(),
        "encoding": "utf-8-sig",
        "rows": 2,
        "new": 1,
        "changed": 1,
        "unchanged": 0,
        "invalid": 0,
        "missing_rows": "retire",
        "validated": "preview",
        "created": 1,
        "updated": 1,
        "retired": 0,
    }
    for secret in (existing.name, "秘密", "090-1111-2222", "090-3333-4444", "hanako", "デモ市"):
        assert secret not in event.details
    assert not event.details_enc


def test_columns_absent_from_the_file_keep_their_values(tenant):
    role = make_role(tenant, "機関員")
    member = make_member(tenant, member_code="A1", address="デモ市1", notes="メモ", role_ids=[role])
    data = csv_file([row("A1", name="改名　一郎")], keys=("member_code", "name", "rank"))
    planned = preview(tenant, data)
    assert [c.column for c in planned.rows[0].changes] == ["氏名"]
    import_file(tenant, data)
    after = by_code(tenant)["A1"]
    assert (after.name, after.address, after.notes, after.role_names, after.email) == (
        "改名　一郎",
        "デモ市1",
        "メモ",
        ["機関員"],
        member.email,
    )


def test_progress_is_reported_up_to_the_total(tenant, monkeypatch):
    for part in (planning, writing):  # rows read, and rows written, per progress report
        monkeypatch.setattr(part, "CHUNK", 2)
    data = csv_file([row(f"P{i}") for i in range(7)])
    planned = preview(tenant, data)
    calls: list[tuple[int, int]] = []
    mi.apply_member_import(
        actor_with(tenant, IMPORTER),
        planned,
        missing=MissingRows.KEEP,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert len(calls) >= 4
    assert all(a[0] / a[1] <= b[0] / b[1] for a, b in itertools.pairwise(calls))
    assert calls[-1][0] == calls[-1][1]


# ---------------------------------------------------------------------------
# Rows missing from the file: an explicit choice
# ---------------------------------------------------------------------------


def test_missing_rows_are_listed_and_kept(tenant):
    make_member(tenant, member_code="A1")
    gone = make_member(tenant, member_code="A2")
    retired = make_member(tenant, member_code="A3")
    members.retire_member(admin(tenant), retired.id)
    planned = preview(tenant, csv_file([row("A1")]))
    assert planned.missing == ["A2"]
    result = mi.apply_member_import(actor_with(tenant, IMPORTER), planned, missing=MissingRows.KEEP)
    assert result.retired == 0
    assert by_code(tenant)["A2"] == gone


def test_missing_rows_are_retired_when_chosen_and_their_sessions_end(tenant):
    make_member(tenant, member_code="A1")
    gone = make_member(tenant, member_code="A2")
    token = open_member_session(tenant, gone.id)
    planned = preview(tenant, csv_file([row("A1")]))
    result = mi.apply_member_import(
        actor_with(tenant, IMPORTER),
        planned,
        missing=MissingRows.RETIRE,
        confirm_name=brigade_name(tenant),  # 1 of 2: above 10 % (#17)
    )
    assert result.retired == 1
    after = by_code(tenant)["A2"]
    assert (after.status, after.version) == (MemberStatus.RETIRED, gone.version + 1)
    assert sessions.resolve(token) is None


def test_the_missing_rows_choice_must_be_given(tenant):
    planned = preview(tenant, csv_file([row("A1")]))
    with pytest.raises(ValueError):
        mi.apply_member_import(actor_with(tenant, IMPORTER), planned, missing="delete")  # type: ignore[arg-type]
    assert roster(tenant) == []


# ---------------------------------------------------------------------------
# Other tenant
# ---------------------------------------------------------------------------


def test_another_brigades_codes_are_neither_seen_nor_changed(tenant, watch):
    other = make_tenant()
    theirs = make_member(other, member_code="A1", affiliation="他団")
    their_audit = watch(other)
    planned = preview(tenant, csv_file([row("A1", affiliation="第1分団")]))
    assert [p.status for p in planned.rows] == [RowStatus.NEW]  # no existence oracle
    assert planned.missing == []
    import_file(tenant, csv_file([row("A1")]), missing=MissingRows.RETIRE)
    assert roster(other) == [theirs]
    assert their_audit.new() == []
    exported = csv_safe.decode(mi.export_members_csv(actor_with(tenant, EXPORTER)))
    assert [r[0] for r in exported[1:]] == ["A1"]
    assert "他団" not in str(exported)


# ---------------------------------------------------------------------------
# Not permitted
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("levels", "function"),
    [
        ({Function.ROSTER: Level.EDIT}, "csv_import"),
        ({Function.CSV_IMPORT: Level.EDIT, Function.ROSTER: Level.VIEW}, "roster"),
    ],
)
def test_importing_needs_csv_import_and_roster_editing(tenant, watch, levels, function):
    data = csv_file([row("A1")])
    allowed = preview(tenant, data)
    actor = actor_with(tenant, levels)
    for attempt in (
        lambda: mi.preview_member_import(actor, data=data, filename="団員.csv"),
        lambda: mi.apply_member_import(actor, allowed, missing=MissingRows.KEEP),
    ):
        audit = watch(tenant)
        with pytest.raises(PermissionDenied):
            attempt()
        (event,) = audit.new()
        assert (event.category, event.action) == ("auth", "permission_denied")
        assert json_details(event)["function"] == function
    assert roster(tenant) == []


@pytest.mark.parametrize(
    "levels",
    [{Function.ROSTER: Level.VIEW}, {Function.CSV_EXPORT: Level.VIEW}],
)
def test_exporting_needs_csv_export_and_roster_viewing(tenant, watch, levels):
    make_member(tenant)
    audit = watch(tenant)
    with pytest.raises(PermissionDenied):
        mi.export_members_csv(actor_with(tenant, levels))
    (event,) = audit.new()
    assert event.action == "permission_denied"


def test_granting_permission_editing_needs_permission_admin(tenant):
    make_member(tenant, member_code="A1")
    for data in (
        csv_file([row("A1", rank="団長")]),
        csv_file([row("B1", rank="副団長")]),
    ):
        planned = preview(tenant, data)
        assert not planned.ready
        assert [(e.column, e.message) for e in planned.errors] == [("階級", ADMIN_REQUIRED)]
    with_admin = actor_with(tenant, IMPORTER | {Function.PERMISSIONS: Level.ADMIN})
    import_file(tenant, csv_file([row("A1", rank="団長")]), actor=with_admin)
    assert by_code(tenant)["A1"].rank_name == "団長"


def test_suspending_needs_account_editing_and_ends_sessions(tenant):
    member = make_member(tenant, member_code="A1")
    token = open_member_session(tenant, member.id)
    data = csv_file(
        [row("A1", name=member.name, status="停止中")],
        keys=("member_code", "name", "rank", "status"),
    )
    planned = preview(tenant, data)
    assert errors_of(planned) == [f"2行目「状態」: {mi.ACCOUNTS_REQUIRED}"]
    accounts = actor_with(tenant, IMPORTER | {Function.MEMBER_ACCOUNTS: Level.EDIT})
    result = import_file(tenant, data, actor=accounts)
    assert result.updated == 1
    assert by_code(tenant)["A1"].status == MemberStatus.SUSPENDED
    assert sessions.resolve(token) is None


def test_an_import_leaves_members_above_the_importer_and_himself_alone(tenant):
    """#15 findings 3 and 5: 「退団にする」 for members missing from the file never reaches a
    member above the importer (here the 団長) nor the importer himself."""
    chief = make_member(tenant, member_code="C1", rank_id=rank_id(tenant, "団長"))
    leader = make_member(tenant, member_code="L1", rank_id=rank_id(tenant, "分団長"))
    plain = make_member(tenant, member_code="P1")
    actor = sessions.resolve(open_member_session(tenant, leader.id))
    assert actor is not None
    planned = mi.preview_member_import(
        actor, data=csv_file([row("X1", name="新入　団員", rank="団員")]), filename="x.csv"
    )
    assert planned.missing == ["P1"]
    assert any("あなた自身（団員番号 L1）" in note for note in planned.notes)
    assert any("1名" in note and "権限の大きい" in note for note in planned.notes)
    mi.apply_member_import(
        actor, planned, missing=MissingRows.RETIRE, confirm_name=brigade_name(tenant)
    )
    now = by_code(tenant)
    assert now["C1"] == chief and now["L1"].status == MemberStatus.ACTIVE
    assert now["P1"].status == MemberStatus.RETIRED and plain.status == MemberStatus.ACTIVE


@pytest.fixture
def unit_leader(tenant) -> Actor:
    """A 班長 whose 団員名簿 編集 is narrowed to the own 所属 (第1分団), with CSV一括登録."""
    hancho = rank_id(tenant, "班長")
    permissions.update_matrix(
        admin(tenant),
        [
            CellChange("rank", hancho, Function.ROSTER, Grant(Level.EDIT, own_unit=True)),
            CellChange("rank", hancho, Function.CSV_IMPORT, Grant(Level.EDIT)),
        ],
    )
    leader = make_member(tenant, member_code="H1", rank_id=hancho, affiliation="第1分団")
    actor = sessions.resolve(open_member_session(tenant, leader.id))
    assert actor is not None
    return actor


def test_a_unit_leader_imports_inside_the_own_unit_only(tenant, unit_leader, watch):
    inside = make_member(tenant, member_code="A1", affiliation="第1分団 第2部")
    outside = make_member(tenant, member_code="A2", affiliation="第2分団")
    leader = by_code(tenant)["H1"]
    unchanged = [member_csv.cells(m) for m in (leader, inside, outside)]
    file_rows = [[c[key] for key in KEYS] for c in unchanged]
    file_rows[1][KEYS.index("notes")] = "更新"
    file_rows.append(["A3", "新人　三郎", "", "団員", "", "第1分団 第3部", "", "", "", "", "", ""])
    data = csv_safe.encode(member_csv.HEADER, file_rows)
    planned = preview(tenant, data, unit_leader)
    assert planned.ready  # an unchanged row of another unit is no error
    assert [p.status for p in planned.rows] == [
        RowStatus.UNCHANGED,
        RowStatus.CHANGED,
        RowStatus.UNCHANGED,
        RowStatus.NEW,
    ]
    mi.apply_member_import(unit_leader, planned, missing=MissingRows.KEEP)
    assert by_code(tenant)["A1"].notes == "更新"

    before = roster(tenant)
    for changed in (
        {**unchanged[2], "notes": "他分団を変更"},
        {**unchanged[1], "affiliation": "第2分団"},  # moving a member out of the own 所属
        {**row("A4"), "affiliation": "第2分団"},
    ):
        planned = preview(tenant, csv_file([changed]), unit_leader)
        assert [(e.column, e.message) for e in planned.errors] == [
            ("所属", "自分の所属（第1分団）以外の団員は登録・変更できません。")
        ]
    assert roster(tenant) == before


def test_a_unit_leader_retires_missing_members_of_the_own_unit_only(tenant, unit_leader):
    make_member(tenant, member_code="A1", affiliation="第1分団")
    outside = make_member(tenant, member_code="A2", affiliation="第2分団")
    leader = by_code(tenant)["H1"]
    data = csv_file([member_csv.cells(leader)])
    planned = preview(tenant, data, unit_leader)
    assert planned.missing == ["A1"]
    assert planned.notes == [
        "ファイルにない団員のうち1名（所属外、または自分より権限の大きい団員）は変更されません。"
    ]
    result = mi.apply_member_import(
        unit_leader, planned, missing=MissingRows.RETIRE, confirm_name=brigade_name(tenant)
    )
    assert result.retired == 1
    assert by_code(tenant)["A1"].status == MemberStatus.RETIRED
    assert by_code(tenant)["A2"] == outside


def test_permissions_are_checked_again_on_the_rows_about_to_be_written(tenant, unit_leader):
    member = make_member(tenant, member_code="A1", affiliation="第1分団")
    planned = preview(
        tenant, csv_file([{**member_csv.cells(member), "notes": "更新"}]), unit_leader
    )
    assert planned.ready
    members.update_member(
        admin(tenant), member.id, data=MemberUpdate(affiliation="第2分団"), expected_version=1
    )
    before = roster(tenant)
    with pytest.raises(ValidationError) as err:
        mi.apply_member_import(unit_leader, planned, missing=MissingRows.KEEP)
    assert err.value.errors == {"2:所属": "自分の所属（第1分団）以外の団員は登録・変更できません。"}
    assert roster(tenant) == before


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_row_errors_name_the_row_and_column_in_japanese(tenant):
    make_member(tenant, member_code="A1", name="既存　一郎", phone="090-1111-2222")
    data = csv_file(
        [
            row("A1", phone="12345"),
            row("B1", email="not-an-address", rank="大将"),
            row("B2", roles="会計", joined_on="2024-02-30", status="休団"),
            row("B3", kana="Tanaka", name=""),
            row("Ｂ３", affiliation="第1\x0b分団"),
            row("B 4", notes="x" * 2001),
        ]
    )
    planned = preview(tenant, data)
    assert not planned.ready
    assert planned.counts[RowStatus.INVALID] == 6
    assert errors_of(planned) == [
        "2行目「電話番号」: 電話番号の形式が正しくありません（例: 090-1234-5678）。",
        "3行目「階級」: 階級「大将」はありません（団長、副団長、分団長、副分団長、部長、班長、団員）。",
        "3行目「メールアドレス」: メールアドレスの形式が正しくありません。",
        "4行目「役職」: 役職「会計」はありません。",
        "4行目「状態」: 「在籍、停止中、退団」のいずれかを入力してください。",
        "4行目「入団日」: 日付として読めません（例: 2024-04-01、2024/4/1、令和6年4月1日）。",
        "5行目「氏名」: 氏名を入力してください。",
        "5行目「ふりがな」: ふりがなはカタカナまたはひらがなで入力してください。",
        "6行目「団員番号」: 団員番号「B3」は5行目と重複しています。",
        "6行目「所属」: 所属に使用できない文字（制御文字など）が含まれています。",
        "7行目「団員番号」: 団員番号は20文字以内の半角英数字・ハイフンで入力してください。",
        "7行目「備考」: 2000文字以内にしてください。",
    ]
    assert "既存" not in str(planned.errors) and "1111" not in str(planned.errors)
    with pytest.raises(ValidationError) as err:
        mi.apply_member_import(actor_with(tenant, IMPORTER), planned, missing=MissingRows.KEEP)
    assert err.value.errors == {"file": mi.NOT_READY}
    assert [m.member_code for m in roster(tenant)] == ["A1"]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("団員番号,氏名,階級,血液型\r\nA1,消防　太郎,団員,A\r\n".encode(), "血液型"),
        ("団員番号,氏名\r\nA1,消防　太郎\r\n".encode(), "必須の列「階級」がありません。"),
        ("団員番号,氏名,階級\r\nA1,消防\x00,団員\r\n".encode(), "NUL"),
        (
            "団員番号,氏名,階級\r\nA1,".encode() + b"\xff\xfe" + ",団員\r\n".encode(),
            "判別できません",
        ),
        (b"", "空です"),
    ],
)
def test_unreadable_files_write_nothing(tenant, watch, data, says):
    make_member(tenant, member_code="A1")
    before = roster(tenant)
    audit = watch(tenant)
    planned = preview(tenant, data)
    (problem,) = planned.file_errors
    assert says in problem
    assert planned.rows == [] and not planned.ready
    with pytest.raises(ValidationError):
        mi.apply_member_import(actor_with(tenant, IMPORTER), planned, missing=MissingRows.RETIRE)
    assert roster(tenant) == before
    assert audit.new() == []


def test_too_many_rows_is_refused_with_the_limit(tenant, monkeypatch):
    monkeypatch.setattr(member_csv, "MAX_ROWS", 3)
    planned = preview(tenant, csv_file([row(f"A{i}") for i in range(4)]))
    assert planned.file_errors == ["行数が多すぎます（4行）。3行以下に分けてください。"]
    assert preview(tenant, csv_file([row(f"A{i}") for i in range(3)])).ready


def test_a_preview_of_another_entity_is_refused(tenant):
    planned = preview(tenant, csv_file([row("A1")]))
    with pytest.raises(ValueError):
        mi.apply_member_import(
            actor_with(tenant, IMPORTER),
            dataclasses.replace(planned, entity="water_source"),
            missing=MissingRows.KEEP,
        )


# ---------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------

HARD_TEXT = [
    row("E1", name="髙橋　①子", kana="ﾀｶﾊｼ　ｲﾁｺ", notes="㈱デモ～\r\n二行目", address="ｱｲｳ町"),
    row("E2", name="ｼｮｳﾎﾞｳ 太郎", affiliation="第１分団", notes="=1+2"),
]


def test_the_same_roster_in_utf8_bom_and_cp932_imports_identically():
    text = csv_safe.encode(member_csv.HEADER, [[r.get(k, "") for k in KEYS] for r in HARD_TEXT])
    text = text.decode("utf-8-sig")
    files = {
        "utf-8": text.encode("utf-8"),
        "utf-8-sig": csv_safe.BOM.encode() + text.encode("utf-8"),
        "cp932": text.encode("cp932"),
    }
    tables = {}
    for encoding, data in files.items():
        tenant_id = make_tenant()
        planned = preview(tenant_id, data)
        assert planned.encoding == encoding
        mi.apply_member_import(actor_with(tenant_id, IMPORTER), planned, missing=MissingRows.KEEP)
        tables[encoding] = table(tenant_id)
    assert tables["utf-8"] == tables["utf-8-sig"] == tables["cp932"]
    first = tables["cp932"][0]
    assert (first["name"], first["kana"], first["address"]) == (
        "髙橋　①子",
        "タカハシ　イチコ",
        "アイウ町",
    )
    assert first["notes"] == "㈱デモ～\r\n二行目"
    assert tables["cp932"][1]["name"] == "ショウボウ 太郎"


def test_cp932_export_reports_what_it_cannot_hold(tenant, watch):
    make_member(tenant, member_code="A1", name="髙橋　①子")
    make_member(tenant, member_code="A2", notes="出動🚒")
    exporter = actor_with(tenant, EXPORTER)
    audit = watch(tenant)
    with pytest.raises(csv_safe.Unencodable) as err:
        mi.export_members_csv(exporter, encoding="cp932")
    assert err.value.problems == [("団員番号 A2", "備考", "🚒")]
    assert audit.new() == []  # nothing was exported
    data = mi.export_members_csv(exporter)
    assert data.startswith(csv_safe.BOM.encode())
    (event,) = audit.new()
    assert (event.action, json_details(event)) == (
        "member.export",
        {
            "count": 2,
            "encoding": "utf-8",
            "personal_fields": ["name", "kana", "phone", "email", "address", "notes"],
        },
    )


def test_export_neutralises_formula_cells_and_lists_every_status(tenant):
    for i, text in enumerate(["=cmd", "+81", "-1", "@SUM(A1)", "'quoted"]):
        member = make_member(tenant, member_code=f"F{i}", name=text, notes=text)
        if i == 1:
            members.retire_member(admin(tenant), member.id)
    data = mi.export_members_csv(actor_with(tenant, EXPORTER)).decode("utf-8-sig")
    for text in ["=cmd", "+81", "-1", "@SUM(A1)", "'quoted"]:
        assert f",'{text}," in data
    assert "退団" in data
    assert preview(tenant, data.encode()).counts[RowStatus.UNCHANGED] == 5


# ---------------------------------------------------------------------------
# Atomicity: all rows or none
# ---------------------------------------------------------------------------


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.integers(min_value=0, max_value=9))
def test_one_bad_row_anywhere_writes_nothing(engine, position):
    tenant_id = make_tenant()
    make_member(tenant_id, member_code="A1")
    before = roster(tenant_id)
    rows = [row(f"B{i}") for i in range(10)]
    good = preview(tenant_id, csv_file(rows))
    rows[position] = row(f"B{position}", phone="0000")
    bad = preview(tenant_id, csv_file(rows))
    assert [p.row for p in bad.rows if p.status == RowStatus.INVALID] == [position + 2]
    # A preview that was valid but whose row is invalid by the time it is applied:
    stale = dataclasses.replace(
        good,
        rows=[
            dataclasses.replace(p, raw=rows[position]) if p.row == position + 2 else p
            for p in good.rows
        ],
    )
    with pytest.raises(ValidationError) as err:
        mi.apply_member_import(actor_with(tenant_id, IMPORTER), stale, missing=MissingRows.RETIRE)
    assert list(err.value.errors) == [f"{position + 2}:電話番号"]
    assert roster(tenant_id) == before


def test_a_failure_in_the_middle_of_applying_leaves_the_database_as_it_was(
    engine, tenant, monkeypatch
):
    make_role(tenant, "機関員")
    make_member(tenant, member_code="A1")
    changed = make_member(tenant, member_code="A2")
    token = open_member_session(tenant, changed.id)
    rows = [row(f"B{i}", roles="機関員") for i in range(7)]
    rows.append({**member_csv.cells(changed), "status": "退団"})
    planned = preview(tenant, csv_file(rows))
    before, seq = roster(tenant), last_audit_seq(engine, tenant)
    monkeypatch.setattr(writing, "CHUNK", 3)
    calls = {"n": 0}
    links = writing._links

    def failing_links(*args):
        calls["n"] += 1
        if calls["n"] == 5:  # after the first chunk was written
            raise RuntimeError("disk full")
        return links(*args)

    monkeypatch.setattr(writing, "_links", failing_links)
    with pytest.raises(RuntimeError):
        mi.apply_member_import(
            actor_with(tenant, IMPORTER),
            planned,
            missing=MissingRows.RETIRE,
            confirm_name=brigade_name(tenant),
        )
    assert roster(tenant) == before
    assert last_audit_seq(engine, tenant) == seq
    assert sessions.resolve(token) is not None
    with unit_of_work(tenant) as session:
        assert verify_chain(session, tenant).ok


# ---------------------------------------------------------------------------
# Transaction-level functions (backup restore calls them inside its own transaction)
# ---------------------------------------------------------------------------


def test_plans_are_written_only_in_the_transaction_that_made_them(tenant):
    actor = admin(tenant)
    with unit_of_work(tenant) as session:
        plans = mi.plan_members(
            Tx(session, actor), [(2, row("A1")), (3, row("A2", phone="1"))]
        ).rows
        assert [p.status for p in plans] == [RowStatus.NEW, RowStatus.INVALID]
    with unit_of_work(tenant) as session, pytest.raises(ValueError):
        mi.write_members(Tx(session, actor), plans[:1], missing=MissingRows.KEEP)
        session.commit()
    with unit_of_work(tenant) as session:
        tx = Tx(session, actor)
        with pytest.raises(ValueError):
            mi.write_members(
                tx, mi.plan_members(tx, [(3, row("A2", phone="1"))]).rows, missing=MissingRows.KEEP
            )
        result = mi.write_members(
            tx, mi.plan_members(tx, [(2, row("A1"))]).rows, missing=MissingRows.KEEP
        )
        session.commit()
    assert result.created == 1
    assert [m.member_code for m in roster(tenant)] == ["A1"]


# ---------------------------------------------------------------------------
# Round trip: export → import gives identical records
# ---------------------------------------------------------------------------

# Japanese text, emoji, formula triggers, quotes, commas and line breaks. For CP932, only what
# it holds one to one (csv_safe reports the rest).
CP932_ALPHABET = list("消防団員髙橋①㈱～ｱｲｳあア漢字 　、。・,\"'=+-@abcXYZ019")
UTF8_ALPHABET = [*CP932_ALPHABET, "😀", "🚒", "𠮷", "ﾟ", "\u3099"]


def members_strategy(alphabet: list[str]) -> st.SearchStrategy[list[dict[str, object]]]:
    text = st.text(st.sampled_from(alphabet), max_size=20)
    name = text.filter(lambda t: t.strip() != "")
    notes = st.text(st.sampled_from([*alphabet, "\n", "\r", "\t"]), max_size=40)
    one = st.fixed_dictionaries(
        {
            "name": name,
            "notes": notes,
            "address": text,
            "affiliation": st.text(st.sampled_from(alphabet), max_size=20),
            "kana": st.text(st.sampled_from(list("アイウエオカナ　ー")), max_size=10),
            "rank": st.sampled_from(["団員", "班長", "部長"]),
            "roles": st.lists(st.sampled_from(["機関員", "指揮/通信"]), unique=True),
            "status": st.sampled_from(list(MemberStatus)),
        }
    )
    return st.lists(one, min_size=1, max_size=3)


def make_brigade() -> uuid.UUID:
    tenant_id = make_tenant()
    for name in ("機関員", "指揮/通信"):
        make_role(tenant_id, name)
    return tenant_id


def populate(tenant_id: uuid.UUID, generated: list[dict[str, object]]) -> None:
    role_ids = {r.name: r.id for r in roles.list_roles(admin(tenant_id))}
    for i, values in enumerate(generated):
        created = make_member(
            tenant_id,
            member_code=f"R{i}",
            name=values["name"],
            notes=values["notes"],
            address=values["address"],
            affiliation=values["affiliation"],
            kana=values["kana"],
            rank_id=rank_id(tenant_id, values["rank"]),  # type: ignore[arg-type]
            role_ids=[role_ids[name] for name in values["roles"]],  # type: ignore[union-attr]
        )
        if values["status"] == MemberStatus.SUSPENDED:
            members.suspend_member(admin(tenant_id), created.id)
        elif values["status"] == MemberStatus.RETIRED:
            members.retire_member(admin(tenant_id), created.id)


def assert_round_trip(generated: list[dict[str, object]], encoding: str) -> None:
    source, target = make_brigade(), make_brigade()
    populate(source, generated)
    data = mi.export_members_csv(actor_with(source, EXPORTER), encoding=encoding)
    importer = actor_with(source, IMPORTER | {Function.MEMBER_ACCOUNTS: Level.EDIT})
    again = mi.preview_member_import(importer, data=data, filename="m.csv")
    assert again.counts[RowStatus.UNCHANGED] == len(generated), errors_of(again)
    restorer = actor_with(target, IMPORTER | {Function.MEMBER_ACCOUNTS: Level.EDIT})
    import_file(target, data, actor=restorer)
    assert table(target) == table(source)


@pytest.mark.parametrize(
    ("encoding", "alphabet"), [("utf-8", UTF8_ALPHABET), ("cp932", CP932_ALPHABET)]
)
def test_export_then_import_gives_identical_records(engine, encoding, alphabet):
    @settings(max_examples=20, deadline=None)
    @given(generated=members_strategy(alphabet))
    def round_trip(generated: list[dict[str, object]]) -> None:
        assert_round_trip(generated, encoding)

    round_trip()


def test_cp932_round_trip_refuses_what_it_cannot_hold(engine):
    tenant_id = make_brigade()
    populate(
        tenant_id,
        [
            {
                "name": "消防🚒",
                "notes": "",
                "address": "",
                "affiliation": "",
                "kana": "",
                "rank": "団員",
                "roles": [],
                "status": "active",
            }
        ],
    )
    with pytest.raises(csv_safe.Unencodable):
        mi.export_members_csv(actor_with(tenant_id, EXPORTER), encoding="cp932")
