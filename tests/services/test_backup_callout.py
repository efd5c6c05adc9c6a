"""Backup and restore of the call-out (#21): who was called for an incident and what they
answered come back with the incident, in this brigade or another; an older backup without them
still restores; a row naming an unknown member or incident writes nothing; another brigade's
call-outs, and a running self-test, are never touched."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlmodel import select

from formats import backup as fmt
from models import Member
from models.base import utcnow
from models.callout import CalloutTarget
from models.dispatch import Incident
from models.enums import Answer
from services import backup
from services.base import transaction
from services.db import unit_of_work
from services.dispatch import callout, incidents, selftest, tally
from services.errors import ValidationError
from services.imports import RowStatus
from tests.callout_factories import messaging
from tests.factories import admin, make_member, make_tenant, rank_id, rebuilt_backup, restore

REMINDED = utcnow().replace(microsecond=0) - timedelta(days=1)


def called_out(tenant: uuid.UUID) -> uuid.UUID:
    """第1分団 called by hand with the leaders: A-001 answers on LINE (出動不可, then 遅れて
    出動 in 10 minutes), A-002 by proxy (出動可 in 15), the leader not at all; A-001 was
    reached on LINE and reminded."""
    boss = admin(tenant)
    first = make_member(tenant, member_code="A-001", affiliation="第1分団 第1部")
    second = make_member(tenant, member_code="A-002", affiliation="第1分団 第2部")
    make_member(tenant, member_code="B-001", affiliation="第2分団")
    make_member(
        tenant, member_code="L-001", affiliation="団本部", rank_id=rank_id(tenant, "分団長")
    )
    fire = incidents.create_incident(
        boss, incidents.IncidentInput(kind="建物火災", place="本町", units=("第1分団",))
    )
    assert callout.call_out(boss, fire.id, ("第1分団",)) == 3
    with transaction(boss, callout.EDIT, action="callout.answer") as tx:
        row, member = tx.session.get(Incident, fire.id), tx.session.get(Member, first.id)
        assert row is not None and member is not None
        for answer, eta in ((Answer.UNAVAILABLE, None), (Answer.LATE, 10)):
            callout.add_answer(tx, row, member, answer, eta_minutes=eta, via="line")
        tx.commit()
    callout.answer_by_proxy(boss, fire.id, second.id, Answer.AVAILABLE, eta_minutes=15)
    with unit_of_work(tenant) as db:  # as LINE and the reminder timer would have left it
        target = db.exec(select(CalloutTarget).where(CalloutTarget.member_id == first.id)).one()
        target.notified, target.reminded_at = True, REMINDED
        db.add(target)
        db.commit()
    return fire.id


def board(tenant: uuid.UUID, incident_id: uuid.UUID) -> tuple:
    """The tally as a leader sees it: per 分団, per member (ids aside), and the waves sent."""
    board = tally.tally(admin(tenant), incident_id)
    return board.units, [replace(line, member_id=None) for line in board.lines], board.waves


def counted(preview: backup.RestorePreview, status: RowStatus) -> list[int]:
    return [preview.plans[name].counts[status] for name in ("callout_targets", "callout_answers")]


def only_incident(tenant: uuid.UUID) -> uuid.UUID:
    (listed,) = incidents.list_incidents(admin(tenant))
    return listed.id


def test_a_call_out_and_its_answers_come_back_in_another_brigade(tenant):
    incident_id = called_out(tenant)
    units, lines, waves = before = board(tenant, incident_id)
    assert [(line.member_code, line.answer, line.eta_minutes, line.via) for line in lines] == [
        ("L-001", None, None, ""),
        ("A-001", Answer.LATE, 10, "line"),
        ("A-002", Answer.AVAILABLE, 15, "proxy"),
    ]
    assert [line.reminded for line in lines] == [False, True, False] and len(waves) == 1
    made = backup.create_backup(admin(tenant))
    fresh = make_tenant()

    preview = backup.inspect_backup(admin(fresh), data=made.data)
    assert preview.ready, {name: plan.errors for name, plan in preview.plans.items()}
    assert counted(preview, RowStatus.NEW) == [3, 3]
    assert backup.WAVES_NOT_RESTORED in preview.notes
    result = restore(admin(fresh), preview, allow_other_brigade=True)
    assert result.callout_targets is not None and result.callout_answers is not None
    assert (result.callout_targets.created, result.callout_answers.created) == (3, 3)

    assert board(fresh, only_incident(fresh)) == (units, lines, [])  # the waves stay history
    assert board(tenant, incident_id) == before
    again = backup.inspect_backup(admin(fresh), data=made.data)
    assert counted(again, RowStatus.UNCHANGED) == [3, 3]


def test_a_version_2_backup_restores_incidents_without_call_outs(tenant):
    incident_id = called_out(tenant)
    made = backup.create_backup(admin(tenant))
    contents = fmt.read_zip(made.data).files
    old = {name: contents[name] for name in fmt.VERSION_FILES[2]}
    manifest = fmt.build_manifest(
        old,
        tenant_id=tenant,
        brigade=made.manifest.brigade,
        created_at=made.manifest.created_at,
        app_version="0.1.0",
        format_version=2,
    )
    data = fmt.write_zip(manifest, old, password=None)
    fresh = make_tenant()

    preview = backup.inspect_backup(admin(fresh), data=data)
    assert preview.ready and "callout_targets" not in preview.plans
    assert backup.NO_CALLOUTS.format(version=2) in preview.notes
    result = restore(admin(fresh), preview, allow_other_brigade=True)
    assert result.callout_targets is None and result.callout_answers is None
    assert board(fresh, only_incident(fresh)) == ([], [], [])
    before = board(tenant, incident_id)  # restored in place, the kept incident keeps its own
    restore(admin(tenant), backup.inspect_backup(admin(tenant), data=data))
    assert board(tenant, incident_id) == before


def test_an_unknown_member_or_incident_is_refused_by_row_and_column(tenant):
    incident_id = called_out(tenant)
    made = backup.create_backup(admin(tenant))
    files = fmt.read_zip(made.data).files
    targets = files[fmt.CALLOUT_TARGETS].decode("utf-8-sig").replace("A-002", "Z-999", 1)
    answers = files[fmt.CALLOUT_ANSWERS].decode("utf-8-sig").replace("\r\n1,", "\r\n9,", 1)
    data = rebuilt_backup(
        made,
        {
            fmt.CALLOUT_TARGETS: ("\ufeff" + targets).encode(),
            fmt.CALLOUT_ANSWERS: ("\ufeff" + answers).encode(),
        },
    )
    answer_for_the_leader(tenant, incident_id)
    before = board(tenant, incident_id)

    preview = backup.inspect_backup(admin(tenant), data=data)
    assert not preview.ready
    plan = preview.plans["callout_targets"]
    assert plan.filename == "callout_targets.csv" and plan.counts[RowStatus.INVALID] == 1
    assert [(e.row, e.column, e.message) for e in plan.errors] == [
        (4, "団員番号", "団員番号「Z-999」が団員名簿（members.csv）にありません。")
    ]
    assert [(e.row, e.column, e.message) for e in preview.plans["callout_answers"].errors] == [
        (2, "番号", "番号 9 の事案が災害出動の事案（incidents.csv）にありません。"),
        (4, "団員番号", "この団員は callout_targets.csv でこの事案に呼び出されていません。"),
    ]
    with pytest.raises(ValidationError):
        restore(admin(tenant), preview)
    assert board(tenant, incident_id) == before


def answer_for_the_leader(tenant: uuid.UUID, incident_id: uuid.UUID) -> None:
    """An answer entered after the backup was made."""
    lines = tally.tally(admin(tenant), incident_id).lines
    leader = next(line for line in lines if line.member_code == "L-001")
    callout.answer_by_proxy(admin(tenant), incident_id, leader.member_id, Answer.UNAVAILABLE)


def test_a_restore_replaces_only_this_brigades_call_outs(tenant):
    incident_id = called_out(tenant)
    bystander = make_tenant()
    their_incident = called_out(bystander)
    theirs = board(bystander, their_incident)
    made = backup.create_backup(admin(tenant))
    before = board(tenant, incident_id)
    answer_for_the_leader(tenant, incident_id)
    assert board(tenant, incident_id) != before

    result = restore(admin(tenant), backup.inspect_backup(admin(tenant), data=made.data))
    assert (result.callout_answers.unchanged, result.callout_answers.retired) == (3, 1)
    assert board(tenant, incident_id) == before  # the incident kept, with its waves
    assert board(bystander, their_incident) == theirs


def test_a_backup_made_while_the_self_test_runs_restores_and_leaves_it_running(tenant):
    """The self-test's incident (numbered 0, waiting for LINE) is not the brigade's record."""
    incident_id = called_out(tenant)
    before = board(tenant, incident_id)
    with messaging():
        assert selftest.run_now(admin(tenant)) is None  # waits for LINE's answer
        made = backup.create_backup(admin(tenant))
        preview = backup.inspect_backup(admin(tenant), data=made.data)
        assert preview.ready, {name: plan.errors for name, plan in preview.plans.items()}
        assert preview.plans["incidents"].missing == []
        restore(admin(tenant), preview)
        assert selftest.status(admin(tenant)).running_since is not None
    assert board(tenant, incident_id) == before
