"""members.roster_view (#19): the 団員名簿 page's one read, which must say what the separate
reads it replaces say, and filter as list_members does."""

from __future__ import annotations

import uuid

import pytest

from models import MemberLine
from models.callout import FriendStatus
from models.enums import Function, Level
from services import members, roles
from services.db import unit_of_work
from services.errors import PermissionDenied
from services.members import MemberFilter
from tests.factories import actor_with, admin, make_member, make_tenant, rank_id


@pytest.fixture
def brigade(tenant) -> uuid.UUID:
    clerk = roles.create_role(admin(tenant), name="庶務", rank_id=rank_id(tenant, "団員"))
    make_member(tenant, name="山田　花子", kana="ヤマダ　ハナコ", affiliation="第1分団")
    make_member(
        tenant,
        name="髙橋　一郎",
        kana="タカハシ　イチロウ",
        affiliation="第2分団 第1部",
        rank_id=rank_id(tenant, "班長"),
        role_ids=[clerk],
    )
    linked = make_member(tenant, name="阿部　三郎", kana="", affiliation="第2分団")
    retired = make_member(tenant, name="佐藤　次郎", kana="サトウ　ジロウ", affiliation="第1分団")
    members.retire_member(admin(tenant), retired.id)
    with unit_of_work(tenant) as db:
        db.add(
            MemberLine(
                tenant_id=tenant,
                member_id=linked.id,
                sub_enc="x",
                sub_bidx="y",
                friend_status=FriendStatus.FRIEND,
            )
        )
        db.commit()
    return tenant


def test_one_read_says_what_the_separate_reads_say(brigade):
    actor = admin(brigade)
    view = members.roster_view(actor)
    assert view.ranks == members.list_ranks(actor)
    assert view.roles == members.list_roles(actor)
    assert view.scope == members.edit_scope(actor)
    assert view.affiliations == members.list_affiliations(actor)
    assert view.reach == members.line_reach(actor)
    listed = members.list_members(actor)
    assert [m.id for m in view.members] == [m.id for m in listed]
    for shown, public in zip(view.members, listed, strict=True):
        roles = {"role_ids": list(shown.role_ids), "role_names": list(shown.role_names)}
        assert shown._asdict() | roles == public.model_dump(exclude={"updated_at"})


@pytest.mark.parametrize(
    "filters",
    [
        MemberFilter(),
        MemberFilter(text="やまだ"),
        MemberFilter(text="タカハシ"),
        MemberFilter(statuses=("active",)),
        MemberFilter(statuses=("retired", "suspended")),
        MemberFilter(affiliation="第2分団"),
        MemberFilter(affiliations=("第1分団",)),
        MemberFilter(affiliations=("第1分団", "第2分団")),
        MemberFilter(line_linked=True),
        MemberFilter(line_linked=False, statuses=("active",)),
    ],
)
def test_filters_select_what_list_members_selects(brigade, filters):
    view = members.roster_view(admin(brigade))
    expected = [m.id for m in members.list_members(admin(brigade), filters)]
    assert [m.id for m in view.matching(filters)] == expected


def test_rank_and_role_filters(brigade):
    actor = admin(brigade)
    view = members.roster_view(actor)
    hancho = rank_id(brigade, "班長")
    clerk = view.roles[0].id
    for filters in (MemberFilter(rank_ids=(hancho,)), MemberFilter(role_ids=(clerk,))):
        assert [m.name for m in view.matching(filters)] == ["髙橋　一郎"]


def test_another_brigade_sees_none_of_it(brigade):
    other = make_tenant()
    view = members.roster_view(admin(other))
    assert view.members == [] and view.affiliations == [] and view.reach == {}
    own = {m.id for m in members.roster_view(admin(brigade)).members}
    foreign = make_member(other)
    assert foreign.id not in {m.id for m in members.roster_view(admin(brigade)).members}
    assert {m.id for m in members.roster_view(admin(other)).members} == {foreign.id}
    assert own


def test_the_roster_view_needs_roster_viewing(brigade):
    with pytest.raises(PermissionDenied):
        members.roster_view(actor_with(brigade, {Function.DASHBOARD: Level.VIEW}))
    narrow = members.roster_view(actor_with(brigade, {Function.ROSTER: Level.VIEW}))
    assert len(narrow.members) == 4 and not narrow.scope.allows_editing
