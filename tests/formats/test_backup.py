"""The backup ZIP: manifest, AES, versions, the dispatch layouts (no place for a credential),
and every way a file can be refused before it is parsed."""

from __future__ import annotations

import io
import json
import random
import uuid
import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats import backup as b
from formats import backup_dispatch as d
from formats import backup_reports as r
from models.enums import Answer, Function

CREATED = datetime(2025, 4, 1, 3, 4, 5, tzinfo=UTC)
TENANT = uuid.UUID("12345678-1234-5678-1234-567812345678")


def files() -> dict[str, bytes]:
    roles = b.encode_roles([b.RoleRow("庶務", "分団長"), b.RoleRow("=機関員", "団員")])
    return {
        b.ROLES: roles,
        b.PERMISSIONS: b.encode_permissions(
            [b.PermissionRow(b.SUBJECT_RANK, "団長", {Function.ROSTER: "編集"})]
        ),
        b.MEMBERS: "\ufeff団員番号,氏名\r\nA1,消防　太郎\r\nA2,消防　花子\r\n".encode(),
        b.WATER_SOURCES: "\ufeff水利番号\r\nW-1\r\n".encode(),
        b.INSPECTIONS: b.encode_inspections([]),
        b.MAIL_SOURCES: d.encode_mail_sources([SOURCE, SOURCE | {"name": "第二本部"}]),
        b.INCIDENTS: d.encode_incidents([INCIDENT]),
        b.INCIDENT_ENTRIES: d.encode_entries([ENTRY]),
        b.CALLOUT_TARGETS: d.encode_targets([TARGET]),
        b.CALLOUT_ANSWERS: d.encode_answers([ANSWER, PROXY]),
        b.ACTIVITY_REPORTS: r.encode_reports([]),
        b.REPORT_STEPS: r.encode_steps([]),
        b.REPORT_SETTINGS: r.encode_settings("[]", ""),
    }


SOURCE = {
    "name": "テスト消防本部",
    "transport": "imap",
    "senders": ["shirei@fd.example.lg.jp"],
    "dkim_required": True,
    "charset_override": "cp932",
    "profile": {"name": "例", "patterns": {"place": "【場所】(?P<value>.+)"}},
    "followup_window_minutes": 180,
    "raw_retention_days": 30,
    "imap_host": "imap.example.jp",
    "imap_port": 993,
    "imap_ssl": True,
    "imap_username": "brigade",
    "imap_folder": "INBOX",
    "active": True,
}
INCIDENT = d.IncidentRow(
    number=7,
    status="出動中",
    needs_review=True,
    review_reasons=("場所を読み取れませんでした。",),
    kind="=建物火災",
    reference="2026-00123",
    units=("第1分団", "第2分団"),
    place="-本町1丁目付近",
    place_approximate=True,
    landmark="本町公民館",
    map_url="https://map.example.jp/?q=1",
    subject="【出動指令】建物火災\n続き",
    source="テスト消防本部",
    occurred_at=datetime(2026, 1, 2, 1, 5, tzinfo=UTC),
    mail_date=None,
    received_at=datetime(2026, 1, 2, 1, 6, 7, 891011, tzinfo=UTC),
    created_at=datetime(2026, 1, 2, 1, 6, 8, tzinfo=UTC),
    updated_at=datetime(2026, 1, 2, 2, 0, tzinfo=UTC),
    closed_at=None,
)
ENTRY = d.EntryRow(7, CREATED, "status", "@状態を変更しました。", "出動中", TENANT, "machine:x")
TARGET = d.TargetRow(
    incident_number=7,
    incident_created_at=INCIDENT.created_at,
    member_code="=A1",
    unit="第1分団",
    leader=False,
    notified=True,
    reminded_at=datetime(2026, 1, 2, 1, 9, tzinfo=UTC),
    created_at=datetime(2026, 1, 2, 1, 6, 9, 12, tzinfo=UTC),
)
ANSWER = d.AnswerRow(
    incident_number=7,
    incident_created_at=INCIDENT.created_at,
    member_code="=A1",
    answer=Answer.LATE,
    eta_minutes=None,
    via="line",
    actor_label="line:U1",
    at=datetime(2026, 1, 2, 1, 10, tzinfo=UTC),
)
PROXY = replace(ANSWER, answer=Answer.AVAILABLE, eta_minutes=15, via="proxy", actor_label="-部長")


def make_zip(
    password: str | None = None,
    contents: dict[str, bytes] | None = None,
    version: int = b.FORMAT_VERSION,
) -> bytes:
    contents = contents or files()
    manifest = b.build_manifest(
        contents,
        tenant_id=TENANT,
        brigade="テスト消防団",
        created_at=CREATED,
        app_version="0.1.0",
        format_version=version,
    )
    return b.write_zip(manifest, contents, password=password)


def rezip(data: bytes, change) -> bytes:
    """The same archive with its entries passed through change(dict) (plain ZIPs only)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    change(entries)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return out.getvalue()


def problems(data: bytes, password: str | None = None) -> list[str]:
    with pytest.raises(b.BackupError) as caught:
        b.read_zip(data, password=password)
    return caught.value.problems


def test_manifest_describes_every_file():
    backup = b.read_zip(make_zip())
    manifest = backup.manifest
    assert (manifest.format, manifest.format_version) == ("hikeshi-backup", 4)
    assert (manifest.tenant_id, manifest.brigade, manifest.created_at) == (
        TENANT,
        "テスト消防団",
        CREATED,
    )
    assert manifest.rows == {
        b.ROLES: 2,
        b.PERMISSIONS: 1,
        b.MEMBERS: 2,
        b.WATER_SOURCES: 1,
        b.INSPECTIONS: 0,
        b.MAIL_SOURCES: 2,
        b.INCIDENTS: 1,
        b.INCIDENT_ENTRIES: 1,
        b.CALLOUT_TARGETS: 1,
        b.CALLOUT_ANSWERS: 2,
        b.ACTIVITY_REPORTS: 0,
        b.REPORT_STEPS: 0,
        b.REPORT_SETTINGS: 1,
    }
    assert backup.files == files()
    assert not backup.encrypted
    entry = manifest.entry(b.MEMBERS)
    assert entry is not None and entry.bytes == len(files()[b.MEMBERS])


def test_manifest_json_is_plain_and_utc():
    with zipfile.ZipFile(io.BytesIO(make_zip())) as archive:
        document = json.loads(archive.read(b.MANIFEST))
        assert archive.namelist()[0] == b.MANIFEST
    assert document["created_at"] == "2025-04-01T03:04:05+00:00"
    assert document["tenant_id"] == str(TENANT)
    assert {f["name"] for f in document["files"]} == set(b.DATA_FILES)


def test_password_protected_round_trip_uses_aes_256():
    data = make_zip(password="correct horse battery")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        assert all(info.flag_bits & 0x1 for info in infos)
        assert all(info.compress_type == 99 for info in infos)  # WinZip AES marker
        with pytest.raises(RuntimeError):  # the standard library cannot read it
            archive.read(b.MEMBERS)
    assert "消防".encode() not in data
    backup = b.read_zip(data, password="correct horse battery")
    assert backup.encrypted and backup.files == files()


def test_missing_and_wrong_password():
    data = make_zip(password="correct horse battery")
    with pytest.raises(b.PasswordRequired):
        b.read_zip(data)
    with pytest.raises(b.WrongPassword) as caught:
        b.read_zip(data, password="wrong horse battery")
    assert caught.value.problems == ["パスワードが違います。"]


def test_short_password_refused():
    with pytest.raises(b.BackupError, match="12文字以上"):
        make_zip(password="short")


def test_edited_file_is_a_hash_mismatch():
    def edit(entries):
        entries[b.MEMBERS] = entries[b.MEMBERS].replace("太郎".encode(), "次郎".encode())

    assert problems(rezip(make_zip(), edit)) == [
        "members.csv の内容が作成時と一致しません（SHA-256 不一致）。編集されたか壊れています。"
    ]


def test_missing_file():
    found = problems(rezip(make_zip(), lambda e: e.pop(b.INSPECTIONS)))
    assert found == ["inspections.csv がありません。"]


def test_unlisted_file():
    found = problems(rezip(make_zip(), lambda e: e.update({"extra.csv": b"x"})))
    assert found == ["管理情報に記載のないファイル extra.csv が含まれています。"]


def test_manifest_must_list_every_data_file():
    def drop(entries):
        document = json.loads(entries[b.MANIFEST])
        document["files"] = [f for f in document["files"] if f["name"] != b.ROLES]
        entries[b.MANIFEST] = json.dumps(document).encode()

    found = problems(rezip(make_zip(), drop))
    assert "管理情報に roles.csv が記載されていません。" in found
    assert "管理情報に記載のないファイル roles.csv が含まれています。" in found


def test_row_count_must_match():
    def miscount(entries):
        document = json.loads(entries[b.MANIFEST])
        next(f for f in document["files"] if f["name"] == b.MEMBERS)["rows"] = 3
        entries[b.MANIFEST] = json.dumps(document).encode()

    assert problems(rezip(make_zip(), miscount)) == ["members.csv の行数が管理情報と一致しません。"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 5}, "版 5"),
        ({"format_version": True}, "版 True"),
        ({"format": "other"}, "Hikeshi のバックアップファイルではありません"),
        ({"tenant_id": "not-a-uuid"}, "内容が正しくありません"),
        ({"created_at": "2025-04-01T03:04:05"}, "内容が正しくありません"),
    ],
)
def test_unknown_or_broken_manifest(change, message):
    def patch(entries):
        document = json.loads(entries[b.MANIFEST])
        document.update(change)
        entries[b.MANIFEST] = json.dumps(document).encode()

    assert message in problems(rezip(make_zip(), patch))[0]


def test_not_a_manifest_at_all():
    found = problems(rezip(make_zip(), lambda e: e.update({b.MANIFEST: b"\xff"})))
    assert found == ["管理情報（manifest.json）が読めません。"]
    found = problems(rezip(make_zip(), lambda e: e.pop(b.MANIFEST)))
    assert "manifest.json）がありません" in found[0]


@pytest.mark.parametrize("cut", [10, 200, -30, -1])
def test_truncated_zip(cut):
    data = make_zip()
    assert "ZIPファイルとして読めません" in problems(data[:cut])[0]


def test_corrupted_entry_is_refused():
    data = bytearray(make_zip())
    position = data.index(b"members.csv") + 40  # inside the compressed data
    data[position] ^= 0xFF
    assert problems(bytes(data))


def test_zip_bomb_refused_before_inflating(monkeypatch):
    monkeypatch.setattr(b, "MAX_UNCOMPRESSED_BYTES", 1_000_000)
    noise = random.Random(16).randbytes(2_000_000)  # no ratio to refuse: the total is
    bomb = rezip(make_zip(), lambda e: e.update({b.MEMBERS: noise}))
    assert problems(bomb) == ["展開後のサイズが大きすぎます（合計 1.9MB、1.0MBまで）。"]


def test_lying_sizes_stop_at_the_budget(monkeypatch):
    """A header claiming a small size does not let more bytes through."""
    bomb = rezip(make_zip(), lambda e: e.update({b.MEMBERS: b"0" * 2_000_000}))
    monkeypatch.setattr(b, "_checked_entries", lambda infos: infos)
    monkeypatch.setattr(b, "MAX_UNCOMPRESSED_BYTES", 1_000_000)
    assert problems(bomb) == ["展開後のサイズが大きすぎます。"]


def test_too_many_entries_and_folders():
    many = rezip(make_zip(), lambda e: e.update({f"x{i}.csv": b"" for i in range(20)}))
    assert "多すぎます" in problems(many)[0]
    folder = rezip(make_zip(), lambda e: e.update({"sub/x.csv": b""}))
    assert "フォルダ" in problems(folder)[0]


def test_oversize_upload(monkeypatch):
    monkeypatch.setattr(b, "MAX_BACKUP_BYTES", 100)
    assert "大きすぎます" in problems(make_zip())[0]


def test_mixed_encryption_refused():
    data = make_zip(password="correct horse battery")
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr("plain.csv", b"x")
    assert problems(out.getvalue(), password="correct horse battery") == [
        "暗号化されたファイルとされていないファイルが混在しています。"
    ]


def test_layouts_round_trip_through_the_tabular_reader():
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    data = b.encode_inspections(
        [b.InspectionRow("=W-1", date(2024, 5, 6), "異常なし", "A1", "", "-漏水なし", when)]
    )
    table = b.read_table(data, b.INSPECTION_COLUMNS)
    assert not table.problems and not table.errors
    assert table.records == [
        (
            2,
            {
                "source_code": "=W-1",
                "inspected_on": "2024-05-06",
                "result": "異常なし",
                "inspector_code": "A1",
                "inspector_name": "",
                "notes": "-漏水なし",
                "created_at": when.isoformat(),
            },
        )
    ]
    assert b"'=W-1" in data and b"'-" in data  # neutralised for Excel


def test_permission_layout_has_a_column_per_function():
    data = b.encode_permissions(
        [b.PermissionRow(b.SUBJECT_ROLE, "庶務", {Function.ROSTER: "編集（自所属）"})]
    )
    table = b.read_table(data, b.PERMISSION_COLUMNS)
    ((row, values),) = table.records
    assert row == 2
    assert values["kind"] == "役職" and values["roster"] == "編集（自所属）"
    assert values["restore"] == ""
    assert len(values) == 2 + len(Function)


def test_read_table_reports_a_wrong_header():
    table = b.read_table("\ufeff役職名,何か\r\nx,y\r\n".encode(), b.ROLE_COLUMNS)
    assert table.problems and not table.records


CELL = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Co")), max_size=20)


@given(st.lists(st.tuples(CELL, CELL), max_size=8))
def test_roles_round_trip(rows):
    rows = [(name, rank) for name, rank in rows if name.strip() or rank.strip()]
    data = b.encode_roles([b.RoleRow(name, rank) for name, rank in rows])
    table = b.read_table(data, b.ROLE_COLUMNS)
    assert b.count_rows(data) == len(rows)
    assert [(v["name"], v["rank"]) for _, v in table.records] == rows


def test_a_deeply_nested_manifest_is_refused_not_crashed():
    """#16: 100,000 nested brackets raised an uncaught RecursionError (the 復元 page crashed).
    Under the size cap a nesting of 60,000 still overflows json's recursion."""
    nested = b"[" * 60_000 + b"]" * 60_000
    bomb = rezip(make_zip(), lambda e: e.update({b.MANIFEST: nested[: b.MAX_MANIFEST_BYTES]}))
    assert problems(bomb) == ["管理情報（manifest.json）が読めません。"]


def test_a_padded_manifest_is_refused_before_it_is_read():
    """#16: a 300 MB padded manifest (300 KB zipped) was accepted with 1.1 GB peak memory."""
    padded = rezip(make_zip(), lambda e: e.update({b.MANIFEST: b" " * 3_000_000 + b"{}"}))
    assert problems(padded) == [b.MANIFEST_TOO_LARGE]


def test_a_manifest_lying_about_its_size_stops_at_the_cap(monkeypatch):
    padded = rezip(make_zip(), lambda e: e.update({b.MANIFEST: b" " * 3_000_000 + b"{}"}))
    monkeypatch.setattr(b, "_checked_entries", lambda infos: infos)
    assert problems(padded) == [b.MANIFEST_TOO_LARGE]


# -- versions ------------------------------------------------------------------------------------


def test_a_version_1_backup_is_read_without_the_dispatch_files():
    old = {name: files()[name] for name in b.VERSION_FILES[1]}
    backup = b.read_zip(make_zip(contents=old, version=1))
    assert backup.manifest.format_version == 1
    assert backup.manifest.data_files == b.VERSION_FILES[1]
    assert set(backup.files) == set(b.VERSION_FILES[1])


@pytest.mark.parametrize("version", [1, 2, 3])
def test_each_version_needs_exactly_its_files(version):
    newer = [name for name in b.DATA_FILES if name not in b.VERSION_FILES[version]]
    assert problems(make_zip(version=version)) == [
        f"管理情報に不明なファイル {name} が記載されています。" for name in sorted(newer)
    ]
    old = {name: files()[name] for name in b.VERSION_FILES[version]}
    assert b.read_zip(make_zip(contents=old, version=version)).files == old
    assert problems(make_zip(contents=old)) == [
        f"管理情報に {name} が記載されていません。" for name in newer
    ]


def test_mail_sources_rows_are_the_list_items():
    def miscount(entries):
        document = json.loads(entries[b.MANIFEST])
        next(f for f in document["files"] if f["name"] == b.MAIL_SOURCES)["rows"] = 1
        entries[b.MANIFEST] = json.dumps(document).encode()

    assert problems(rezip(make_zip(), miscount)) == [
        "mail_sources.json の行数が管理情報と一致しません。"
    ]
    assert b.count_records(b"{}") == 1  # report_settings.json: one object, one record
    assert b.count_records(b"\xff") == b.count_records(b"[[[") == b.count_records(b"3") == -1


def test_a_large_mail_sources_file_is_refused_by_its_size(monkeypatch):
    monkeypatch.setattr(b, "MAX_SOURCES_BYTES", 1000)
    monkeypatch.setitem(b._JSON_CAPS, b.MAIL_SOURCES, (1000, b.SOURCES_TOO_LARGE))
    padded = rezip(make_zip(), lambda e: e.update({b.MAIL_SOURCES: b" " * 5000 + b"[]"}))
    assert problems(padded) == [b.SOURCES_TOO_LARGE]
    monkeypatch.setattr(b, "_checked_entries", lambda infos: infos)  # a header that lies
    assert problems(padded) == [b.SOURCES_TOO_LARGE]


# -- dispatch layouts ----------------------------------------------------------------------------


def test_mail_sources_round_trip_and_hold_no_credentials():
    with_secrets = SOURCE | {"address_token": "0123456789abcdef01234567", "imap_password": "pw!"}
    data = d.encode_mail_sources([with_secrets])
    assert b"0123456789abcdef01234567" not in data and b"pw!" not in data
    table = d.read_mail_sources(data)
    assert not table.errors and not table.problems
    ((number, raw),) = table.records
    assert number == 1 and d.source_values(raw) == SOURCE


def test_mail_sources_with_unknown_missing_or_mistyped_keys():
    broken = dict(SOURCE, imap_password="secret", imap_port="993", active=1)
    del broken["senders"]
    data = json.dumps([broken, "not a source", SOURCE | {"senders": ["a", 1]}]).encode()
    table = d.read_mail_sources(data)
    assert [str(e) for e in table.errors] == [
        "1行目「imap_password」: この項目は使えません。",
        "1行目「送信元」: 項目がありません。",
        "1行目「IMAPポート」: 値の種類が正しくありません。",
        "1行目「有効」: 値の種類が正しくありません。",
        "2行目「送信元の設定」: 形式が正しくありません。",
        "3行目「送信元」: 値の種類が正しくありません。",
    ]
    assert [number for number, _ in table.records] == [1, 2, 3]


@pytest.mark.parametrize("data", [b"\xff", b"{}", b"[" * 100_000])
def test_unreadable_mail_sources(data):
    table = d.read_mail_sources(data)
    assert table.problems and not table.records


def test_incidents_and_entries_round_trip_exactly():
    data = d.encode_incidents([INCIDENT, replace(INCIDENT, number=8, closed_at=CREATED)])
    table = b.read_table(data, d.INCIDENT_COLUMNS)
    assert not table.errors and not table.problems
    parsed = [d.parse_incident(number, raw) for number, raw in table.records]
    assert parsed == [(INCIDENT, []), (replace(INCIDENT, number=8, closed_at=CREATED), [])]
    assert b"'=" in data and b"'-" in data  # neutralised for Excel, restored exactly
    entries = b.read_table(d.encode_entries([ENTRY]), d.ENTRY_COLUMNS)
    assert [d.parse_entry(n, raw) for n, raw in entries.records] == [(ENTRY, [])]


def test_incident_cells_that_are_no_values():
    (row,) = b.read_table(d.encode_incidents([INCIDENT]), d.INCIDENT_COLUMNS).records[0:1]
    number, raw = row
    bad = raw | {
        "number": "0",
        "needs_review": "多分",
        "units": '{"a": 1}',
        "review_reasons": "[" * 3000,
        "place": "本町\x00",
        "created_at": "",
        "received_at": "2026-01-02T01:06:07",
    }
    incident, errors = d.parse_incident(number, bad)
    assert incident is None
    assert [(e.column, e.message) for e in errors] == [
        ("番号", "1以上の整数にしてください。"),
        ("要確認", "「はい」か「いいえ」にしてください。"),
        ("要確認の理由", "文字列のリストにしてください。"),
        ("出動分団", "文字列のリストにしてください。"),
        ("発生場所", "使用できない文字が含まれています。"),
        ("受信（UTC）", "日時（タイムゾーン付き）が正しくありません。"),
        ("登録（UTC）", "入力してください。"),
    ]
    entry, errors = d.parse_entry(2, {c.key: "" for c in d.ENTRY_COLUMNS} | {"mail_id": "x"})
    assert entry is None
    assert [e.column for e in errors] == ["番号", "日時（UTC）", "受信メールID"]


def test_callout_targets_and_answers_round_trip_exactly():
    data = d.encode_targets([TARGET, replace(TARGET, member_code="A2", reminded_at=None)])
    table = b.read_table(data, d.TARGET_COLUMNS)
    assert not table.errors and not table.problems
    assert [d.parse_target(n, raw) for n, raw in table.records] == [
        (TARGET, []),
        (replace(TARGET, member_code="A2", reminded_at=None), []),
    ]
    data = d.encode_answers([ANSWER, PROXY])
    assert "本人（LINE）".encode() in data and "代理入力".encode() in data
    assert b"'=A1" in data and b"'-" in data  # neutralised for Excel, restored exactly
    table = b.read_table(data, d.ANSWER_COLUMNS)
    assert [d.parse_answer(n, raw) for n, raw in table.records] == [(ANSWER, []), (PROXY, [])]


def test_callout_cells_that_are_no_values():
    ((number, raw),) = b.read_table(d.encode_answers([PROXY]), d.ANSWER_COLUMNS).records
    bad = raw | {"member_code": " ", "answer": "行けます", "eta_minutes": "241", "via": "電話"}
    answer, errors = d.parse_answer(number, bad)
    assert answer is None
    assert [(e.row, e.column, e.message) for e in errors] == [
        (2, "団員番号", "団員番号が正しくありません。"),
        (2, "出動可否", "「出動可」・「遅れて出動」・「出動不可」のいずれかにしてください。"),
        (2, "到着見込み（分）", "空欄か、1〜240の整数にしてください。"),
        (2, "回答方法", "「本人（LINE）」・「代理入力」のいずれかにしてください。"),
    ]
    ((number, raw),) = b.read_table(d.encode_targets([TARGET]), d.TARGET_COLUMNS).records
    target, errors = d.parse_target(number, raw | {"leader": "1", "created_at": ""})
    assert target is None
    assert [e.column for e in errors] == ["幹部", "呼び出し（UTC）"]
