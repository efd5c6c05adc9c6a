"""Targeting rules of the call-out (#21): by kind and JST hour (start included, end excluded,
past midnight), 「全団員」, validation by row and column with nothing saved, what was
normalised, permissions, other brigades, and the neighbouring 分団 offered when a crew is
short."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from models.base import utcnow
from models.enums import Function, Level
from services.dispatch import callout, callout_rules, incidents, intake, outbox, tally
from services.dispatch.callout_rules import NeighbourRow, Rule, RuleRow
from services.errors import Conflict, PermissionDenied, ValidationError
from tests.callout_factories import Brigade, make_brigade, messaging
from tests.dispatch_factories import SENDER, body, mail, make_source, where
from tests.factories import actor_with, admin, audit_events

pytestmark = pytest.mark.usefixtures("engine")


def dispatch(brigade: Brigade, *, kind: str = "建物火災", hour: int = 10, units="本町団1"):
    """A dispatch mail ordered at `hour`:05 JST."""
    source = make_source(brigade.tenant_id)
    text = body(
        kind=kind,
        units=units,
        time=f"令和８年１２月６日　{hour}時０５分",
        reference=uuid.uuid4().hex[:12],
    )
    outcome = intake.receive(where(source), mail(source.address, text), envelope_from=SENDER)
    return outcome.incident_id


def called(brigade: Brigade, incident_id: uuid.UUID) -> set[uuid.UUID]:
    return {line.member_id for line in tally.tally(admin(brigade.tenant_id), incident_id).lines}


def save(brigade: Brigade, rules=(), neighbours=(), *, actor=None) -> callout_rules.Saved:
    current = callout_rules.get_targeting(admin(brigade.tenant_id))
    return callout_rules.update_targeting(
        actor or admin(brigade.tenant_id),
        rules=list(rules),
        neighbours=list(neighbours),
        expected_version=current.version,
    )


@pytest.mark.parametrize(
    ("start", "end", "inside", "outside"),
    [
        (22, 6, (22, 23, 0, 5), (6, 12, 21)),  # past midnight
        (8, 17, (8, 16), (7, 17, 23)),
        (0, 0, (0, 12, 23), ()),  # start == end: all day
    ],
)
def test_a_rule_covers_its_start_hour_and_not_its_end_hour(start, end, inside, outside):
    rule = Rule(words=(), start=start, end=end, units=("第2分団",))
    assert [rule.covers(h) for h in inside] == [True] * len(inside)
    assert [rule.covers(h) for h in outside] == [False] * len(outside)


def test_kind_words_match_after_nfkc_and_no_words_match_every_kind():
    rule = Rule(words=("林野", "第2出動"), start=0, end=0, units=("第2分団",))
    assert rule.matches("林野火災", 3)
    assert rule.matches("建物火災（第２出動）", 3)  # full-width digits in the mail's kind
    assert not rule.matches("建物火災", 3)
    assert Rule(words=(), start=0, end=0, units=("第2分団",)).matches("救助", 3)


def test_a_matching_rule_adds_its_units_only_in_its_hours(engine):
    brigade = make_brigade({"第1分団": 2, "第2分団": 2, "第3分団": 2})
    save(brigade, [RuleRow("建物火災", 22, 6, ("第2分団",))])
    first, second = brigade.in_unit("第1分団"), brigade.in_unit("第2分団")

    at_start = dispatch(brigade, hour=22)
    assert called(brigade, at_start) == first | second | brigade.leaders
    after_midnight = dispatch(brigade, hour=5)
    assert called(brigade, after_midnight) == first | second | brigade.leaders
    at_end = dispatch(brigade, hour=6)
    assert called(brigade, at_end) == first | brigade.leaders
    other_kind = dispatch(brigade, kind="救急支援", hour=23)
    assert called(brigade, other_kind) == first | brigade.leaders

    _, entries = incidents.get_incident(admin(brigade.tenant_id), at_start)
    (entry,) = [e for e in entries if e.kind == "callout"]
    assert "第1分団・第2分団" in entry.summary
    assert "呼び出しルール: ルール1（建物火災 22時〜6時）→ 第2分団" in entry.summary
    (event,) = [
        json.loads(e.details)
        for e in audit_events(engine, brigade.tenant_id)
        if e.action == "callout.callout" and e.target_id == str(at_start)
    ]
    assert event["rules"] == [{"rule": 1, "units": ["第2分団"], "everyone": False}]


def test_a_rule_for_everyone_calls_every_active_member():
    brigade = make_brigade({"第1分団": 1, "第2分団": 1, "第3分団": 1})
    save(
        brigade,
        [RuleRow("建物火災", 0, 0, ("第3分団",)), RuleRow("林野", 0, 0, ("全団員",))],
    )
    assert called(brigade, dispatch(brigade, kind="林野火災")) == set(brigade.subs)
    fire = dispatch(brigade, kind="建物火災")
    assert called(brigade, fire) == (
        brigade.in_unit("第1分団") | brigade.in_unit("第3分団") | brigade.leaders
    )


def test_another_brigades_rules_do_not_apply():
    brigade = make_brigade({"第1分団": 1, "第2分団": 1})
    other = make_brigade({"第1分団": 1, "第2分団": 1})
    save(brigade, [RuleRow("", 0, 0, ("全団員",))], [NeighbourRow("第1分団", ("第2分団",))])
    assert called(other, dispatch(other)) == other.in_unit("第1分団") | other.leaders
    assert callout_rules.get_targeting(admin(other.tenant_id)).rules == ()
    assert callout_rules.get_targeting(admin(other.tenant_id)).neighbours == {}


def test_bad_rows_are_named_by_row_and_column_and_nothing_is_saved():
    brigade = make_brigade({"第1分団": 1, "第2分団": 1})
    with pytest.raises(ValidationError) as refused:
        save(
            brigade,
            [
                RuleRow("建物火災", 22, 6, ("第2分団",)),
                RuleRow("林野", 8, 17, ("第2分団", "第9分団")),
                RuleRow("救助", 24, None, ()),
                RuleRow("", None, None, ()),  # a blank row is left out
            ],
            [NeighbourRow("第1分団", ("第1分団",)), NeighbourRow("第1分団", ("第2分団",))],
        )
    assert list(refused.value.errors.values()) == [
        "2行目「呼び出す分団」: 第9分団 は団員のいる分団ではありません。",
        "3行目「開始時」: 開始時は0〜23の整数（日本時間の時）で入力してください。",
        "3行目「終了時」: 終了時は0〜23の整数（日本時間の時）で入力してください。",
        "3行目「呼び出す分団」: 呼び出す分団（または「全団員」）を選んでください。",
        "1行目「隣接する分団」: 第1分団 自身は選べません。",
        "2行目「分団」: 第1分団 は1行目にもあります。",
    ]
    with pytest.raises(ValidationError) as too_many:
        save(brigade, [RuleRow("", 0, 0, ("第1分団",))] * (callout_rules.MAX_RULES + 1))
    assert "30件まで" in too_many.value.errors["ルール"]
    unchanged = callout_rules.get_targeting(admin(brigade.tenant_id))
    assert (unchanged.rules, unchanged.neighbours, unchanged.version) == ((), {}, 0)


def test_saving_shows_what_was_normalised_and_audits_before_and_after(engine):
    brigade = make_brigade({"第1分団": 1, "第2分団": 1})
    saved = save(
        brigade,
        [RuleRow("建物火災，ＡＢＣ 、建物火災", "２２", 6.0, ("第２分団",))],
        [NeighbourRow("第1分団", ("第2分団",))],
    )
    (rule,) = saved.targeting.rules
    assert rule == Rule(words=("建物火災", "ABC"), start=22, end=6, units=("第2分団",))
    assert saved.targeting.neighbours == {"第1分団": ("第2分団",)}
    assert saved.notes == (
        "1行目「種別に含む語」: 「建物火災、ＡＢＣ、建物火災」を「建物火災、ABC」として保存しました。",
        "1行目「開始時」: 「２２」を「22」として保存しました。",
        "1行目「呼び出す分団」: 「第２分団」を「第2分団」として保存しました。",
    )
    assert callout_rules.get_targeting(admin(brigade.tenant_id)) == saved.targeting
    (event,) = [
        json.loads(e.details)
        for e in audit_events(engine, brigade.tenant_id)
        if e.action == "callout_rules.update"
    ]
    assert event["before"] == {"rules": [], "neighbours": {}}
    assert event["after"]["rules"][0]["words"] == ["建物火災", "ABC"]
    assert event["after"]["neighbours"] == {"第1分団": ["第2分団"]}


def test_viewers_read_the_rules_and_only_admins_save_them():
    brigade = make_brigade({"第1分団": 1, "第2分団": 1})
    save(brigade, [RuleRow("建物火災", 22, 6, ("第2分団",))])
    viewer = actor_with(brigade.tenant_id, {Function.DISPATCH: Level.VIEW})
    editor = actor_with(brigade.tenant_id, {Function.DISPATCH: Level.EDIT})
    assert len(callout_rules.get_targeting(viewer).rules) == 1
    for actor in (viewer, editor):
        with pytest.raises(PermissionDenied):
            save(brigade, [], actor=actor)
    with pytest.raises(PermissionDenied):
        callout_rules.get_targeting(actor_with(brigade.tenant_id, {}))
    with pytest.raises(Conflict):  # a stale version
        callout_rules.update_targeting(
            admin(brigade.tenant_id), rules=[], neighbours=[], expected_version=0
        )
    assert len(callout_rules.get_targeting(viewer).rules) == 1


def test_a_short_crew_names_its_neighbours_not_yet_called_as_candidates(engine):
    brigade = make_brigade({"第1分団": 3, "第2分団": 1, "第3分団": 1, "第4分団": 1})
    save(brigade, neighbours=[NeighbourRow("第1分団", ("第2分団", "第3分団", "第4分団"))])
    with messaging() as fake:
        incident_id = dispatch(brigade)
        callout.call_out(admin(brigade.tenant_id), incident_id, ("第3分団",))
        assert callout_rules.widening_offer(admin(brigade.tenant_id), incident_id) == (
            "第2分団",
            "第4分団",
        )
        now = utcnow() + timedelta(minutes=4)
        outbox.escalate(brigade.tenant_id, now=now)
        outbox.send_tenant(brigade.tenant_id, outbox.QuotaGuard(), now=now)
    texts = [d.messages[0].get("text", "") for d in fake.deliveries]
    (short,) = [t for t in texts if "第1分団: 出動可 0名" in t]
    assert "応援候補（隣接分団）: 第2分団・第4分団" in short
    _, entries = incidents.get_incident(admin(brigade.tenant_id), incident_id)
    (entry,) = [e for e in entries if e.kind == "shortage" and "第1分団" in e.summary]
    assert "応援候補（隣接分団）: 第2分団・第4分団。" in entry.summary
