"""The brigade's 出動報酬 table (services.reports.rewards, #22): saved and read with the
settings version, audited by what changed, refused with every validation message, tried out."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime

import pytest

from core.actor import Actor
from core.rewards import HIOKI, KUMIYAMA, MISAWA, Band, CategoryRule
from core.timefmt import JST
from models.enums import AuditCategory, Function, Level
from services.errors import Conflict, PermissionDenied, ValidationError
from services.reports import rewards
from services.signin import sessions
from tests.factories import actor_with, admin, make_member, make_tenant, open_member_session


def plain_member(tenant: uuid.UUID) -> Actor:
    """A 団員 signed in: 出動報告 閲覧 by default, not 管理."""
    member = make_member(tenant)
    actor = sessions.resolve(open_member_session(tenant, member.id))
    assert actor is not None
    return actor


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2025, 4, day, hour, minute, tzinfo=JST)


def test_a_saved_table_is_read_back_with_its_version(tenant, watch):
    assert rewards.get_reward_table(admin(tenant)) == (None, 0)
    audit = watch(tenant)
    assert rewards.save_reward_table(admin(tenant), MISAWA, expected_version=0) == 1
    assert rewards.get_reward_table(plain_member(tenant)) == (MISAWA, 1)

    edited = replace(
        MISAWA,
        name="三沢市（改）",
        rules=(*MISAWA.rules[:2], replace(MISAWA.rules[2], per_day=False)),
        other_category=None,
        highest_per_day_only=True,
    )
    assert rewards.save_reward_table(admin(tenant), edited, expected_version=1) == 2
    assert rewards.get_reward_table(admin(tenant)) == (edited, 2)

    first, second = [e for e in audit.new(AuditCategory.OPERATION) if "reward" in e.action]
    assert json.loads(first.details)["added"] == ["災害", "訓練", "警戒", "その他"]
    assert json.loads(second.details) == {
        "added": [],
        "removed": ["その他"],
        "changed": ["警戒"],
        "options": {
            "name": ["三沢市", "三沢市（改）"],
            "other_category": ["その他", None],
            "highest_per_day_only": [False, True],
        },
    }


def test_a_stale_version_is_refused(tenant):
    rewards.save_reward_table(admin(tenant), MISAWA, expected_version=0)
    with pytest.raises(Conflict):
        rewards.save_reward_table(admin(tenant), HIOKI, expected_version=0)
    assert rewards.get_reward_table(admin(tenant)) == (MISAWA, 1)


def test_another_brigade_sees_nothing_and_changes_nothing(tenant):
    other = make_tenant()
    rewards.save_reward_table(admin(tenant), MISAWA, expected_version=0)
    assert rewards.get_reward_table(admin(other)) == (None, 0)
    with pytest.raises(Conflict):
        rewards.save_reward_table(admin(other), HIOKI, expected_version=1)
    rewards.save_reward_table(admin(other), KUMIYAMA, expected_version=0)
    assert rewards.get_reward_table(admin(tenant)) == (MISAWA, 1)
    assert rewards.get_reward_table(admin(other)) == (KUMIYAMA, 1)


def test_a_plain_member_may_read_but_not_save_nor_try(tenant, watch):
    member = plain_member(tenant)
    audit = watch(tenant)
    with pytest.raises(PermissionDenied):
        rewards.save_reward_table(member, MISAWA, expected_version=0)
    with pytest.raises(PermissionDenied):
        rewards.preview(member, MISAWA, "災害", at(9), at(10))
    assert rewards.get_reward_table(admin(tenant)) == (None, 0)
    denied = audit.new(AuditCategory.AUTH)
    assert [json.loads(e.details)["attempted"] for e in denied] == [
        "reports.reward_table.save",
        "reports.reward_table.preview",
    ]
    with pytest.raises(PermissionDenied):
        rewards.get_reward_table(actor_with(tenant, {Function.ROSTER: Level.ADMIN}))


def test_a_bad_table_is_refused_with_every_message(tenant):
    broken = replace(
        MISAWA,
        rules=(
            CategoryRule("災害", bands=(Band(0, 240, 2_500), Band(200, None, 5_000))),
            CategoryRule("訓練", bands=(Band(0, None, 2_500),), hourly_rate=1_000),
            CategoryRule("x" * 21, bands=(Band(0, None, 1),)),
        ),
    )
    with pytest.raises(ValidationError) as refused:
        rewards.save_reward_table(admin(tenant), broken, expected_version=0)
    messages = list(refused.value.errors.values())
    assert "災害 2行目: 前の行と時間帯が重なっています。" in messages
    assert "訓練: 時間帯の表か時間単価のどちらか一方を設定してください。" in messages
    assert "その他の活動の区分「その他」がありません。" in messages
    assert f"{'x' * 20}…: 区分名は20文字までです。" in messages
    assert rewards.get_reward_table(admin(tenant)) == (None, 0)


def test_a_trial_activity_is_priced_by_the_table_as_edited(tenant):
    (line,) = rewards.preview(admin(tenant), MISAWA, "火災", at(9), at(13))
    assert (line.amount, line.explanation) == (5_000, "火災（災害） 4時間以上7時間45分未満 5,000円")
    (line,) = rewards.preview(admin(tenant), HIOKI, "災害", at(9), at(10), false_alarm=True)
    assert line.amount == 5_000
    first, second = rewards.preview(admin(tenant), KUMIYAMA, "災害", at(20), at(5, day=2))
    assert (first.amount, second.amount) == (8_000, 1_000)


@pytest.mark.parametrize(
    ("table", "category", "end", "message"),
    [
        (KUMIYAMA, "会議", at(10), "区分「会議」は表にありません。"),
        (MISAWA, "災害", at(8), "終了時刻は開始時刻より後にしてください。"),
        (replace(MISAWA, name=""), "災害", at(10), "名前を入力してください。"),
    ],
)
def test_a_trial_is_refused_with_the_reason(tenant, table, category, end, message):
    with pytest.raises(ValidationError) as refused:
        rewards.preview(admin(tenant), table, category, at(9), end)
    assert message in refused.value.errors.values()
