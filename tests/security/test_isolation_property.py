"""Tenant isolation as a state machine over the services: two brigades, an administrator and a
roster-viewer in each, and random operations whose targets are drawn from both brigades. Whatever
an actor of one brigade does, the other brigade's roster, roles, water sources and audit chain
stay exactly as they were, and nothing the services return belongs to another brigade."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlmodel import select

from core.actor import Actor
from models import AuditChainHead, MemberCreate, MemberPublic, MemberUpdate, WaterSource
from models.enums import Function, Level, MemberStatus
from models.water import WaterSourceBase
from services import members, roles, water_sources
from services.db import unit_of_work
from services.errors import Conflict, NotFound, PermissionDenied, Refused, ValidationError
from services.members import MemberFilter
from services.validation import clean_text, search_key
from tests.factories import actor_with, admin, make_tenant

STATS: Counter[str] = Counter()
_serial = itertools.count(1)

OUTCOMES: dict[type[Exception], str] = {
    NotFound: "not_found",
    PermissionDenied: "denied",
    Refused: "denied",
    Conflict: "conflict",
    ValidationError: "invalid",
}
WRITE_AUDITED = {"ok": 1, "denied": 1}  # a denial is audited in its own transaction

ACTORS = st.sampled_from(
    [
        ("A", "admin"),
        ("B", "admin"),
        ("A", "admin"),
        ("B", "admin"),
        ("A", "limited"),
        ("B", "limited"),
    ]
)
REFS = st.sampled_from(["own", "own", "other"])  # a rank or role of whose brigade
CODES = st.sampled_from(["fresh", "fresh", "own", "other", "invalid"])

# Any text except lone surrogates (not encodable) and control characters, which the services
# reject (test_nul_in_plain_text_is_a_validation_error below, found by this machine).
PLAIN = st.characters(blacklist_categories=("Cs", "Cc"))
NAMES = st.one_of(
    st.sampled_from(
        ["消防　太郎", "髙橋 一郎", "山﨑①", "ﾔﾏﾀﾞ ﾊﾅｺ", "渡邉　花子", "🚒火消し", "👨‍🚒", "　", ""]
    ),
    st.text(st.sampled_from("消防団員太郎花子髙﨑あいうアイウｱｲｳ🚒🔥👩‍🚒　 a"), max_size=55),
    st.text(PLAIN, max_size=55),
)
KANAS = st.sampled_from(["", "ショウボウ　タロウ", "やまだ はなこ", "ﾀﾛｳ", "Yamada"])
PHONES = st.sampled_from(["", "090-1234-5678", "０３－１２３４－５６７８", "09012345678", "12345"])
ROLE_NAMES = st.one_of(
    st.sampled_from(["庶務", "会計", "機関員", "ポンプ係", "🚒係", "", "x" * 41]),
    st.text(PLAIN, max_size=45),
)
WATER_KINDS = st.sampled_from(["消火栓", "防火水槽", "プール", "温泉"])  # 温泉 is not a kind


@dataclass
class Row:
    code: str
    version: int
    status: str
    name: str
    kana: str
    phone: str
    rank_id: uuid.UUID
    role_ids: frozenset[uuid.UUID]

    @classmethod
    def of(cls, m: MemberPublic) -> Row:
        fields = (m.member_code, m.version, m.status, m.name, m.kana, m.phone, m.rank_id)
        return cls(*fields, frozenset(m.role_ids))


@dataclass
class Brigade:
    key: str
    id: uuid.UUID
    admin: Actor
    limited: Actor
    ranks: list[uuid.UUID]
    roles: dict[str, uuid.UUID] = field(default_factory=dict)
    members: dict[uuid.UUID, Row] = field(default_factory=dict)
    water_codes: set[str] = field(default_factory=set)
    audit_seq: int = 0
    seen: tuple = ()  # the roster as last observed through the services

    def snapshot(self) -> tuple:
        return tuple(
            sorted((i, r.version, r.status, r.name, r.phone) for i, r in self.members.items())
        )

    def codes(self) -> list[str]:
        return [r.code for r in self.members.values()]


def attempt(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except tuple(OUTCOMES) as exc:
        return OUTCOMES[type(exc)], exc


def fresh_code(prefix: str = "H") -> str:
    return f"{prefix}{next(_serial):06d}"


def name_problem(name: str, limit: int) -> bool:
    cleaned = clean_text(name)
    return not cleaned or len(cleaned) > limit


def roster(actor: Actor) -> tuple:
    return tuple(
        sorted((m.id, m.version, m.status, m.name, m.phone) for m in members.list_members(actor))
    )


def audit_head(tenant_id: uuid.UUID) -> int:
    with unit_of_work(tenant_id) as db:
        query = select(AuditChainHead.seq).where(AuditChainHead.tenant_id == tenant_id)
        return db.exec(query).one()


def water_codes(tenant_id: uuid.UUID) -> set[str]:
    with unit_of_work(tenant_id) as db:
        query = select(WaterSource.code).where(WaterSource.tenant_id == tenant_id)
        return set(db.exec(query).all())


class TenantIsolation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.brigades = {key: self._brigade(key) for key in ("A", "B")}
        self.acting: str | None = None
        self.cross_tenant = 0
        STATS["runs"] += 1
        for brigade in self.brigades.values():
            # Same role name in both brigades: names are unique per brigade, not globally.
            brigade.roles["庶務"] = roles.create_role(
                brigade.admin, name="庶務", rank_id=brigade.ranks[-1]
            )
            created = members.create_member(
                brigade.admin,
                data=MemberCreate(
                    member_code=fresh_code(), name="消防　一郎", rank_id=brigade.ranks[-1]
                ),
            )
            brigade.members[created.id] = Row.of(created)
            brigade.audit_seq = audit_head(brigade.id)
            brigade.seen = roster(brigade.admin)

    @staticmethod
    def _brigade(key: str) -> Brigade:
        tenant_id = make_tenant()
        boss = admin(tenant_id)
        return Brigade(
            key=key,
            id=tenant_id,
            admin=boss,
            limited=actor_with(tenant_id, {Function.ROSTER: Level.VIEW}),
            ranks=[r.id for r in members.list_ranks(boss)],
        )

    # -- helpers ------------------------------------------------------------------------------

    def act(self, who: tuple[str, str]) -> tuple[Brigade, Brigade, Actor, bool]:
        key, kind = who
        self.acting = key
        own = self.brigades[key]
        other = self.brigades["B" if key == "A" else "A"]
        return own, other, (own.admin if kind == "admin" else own.limited), kind == "admin"

    def crossed(self, what: str, by_admin: bool) -> None:
        self.cross_tenant += 1
        STATS["cross_tenant"] += 1
        STATS[f"cross_tenant.{what}"] += 1
        if by_admin:
            STATS["cross_tenant.by_admin"] += 1

    def target(self, data: st.DataObject) -> tuple[uuid.UUID, Brigade | None]:
        """Any member id of either brigade, now and then one that exists nowhere."""
        known = [(i, b) for b in self.brigades.values() for i in b.members]
        choice = data.draw(st.one_of(st.sampled_from(known), st.just(None)), label="target")
        return choice if choice is not None else (uuid.uuid4(), None)

    def ref(self, data: st.DataObject, whose: str, own: Brigade, other: Brigade, kind: str):
        brigade = own if whose == "own" else other
        pool = brigade.ranks if kind == "rank" else list(brigade.roles.values())
        return data.draw(st.sampled_from(pool), label=f"{whose} {kind}") if pool else None

    def code(self, data: st.DataObject, choice: str, own: Brigade, other: Brigade) -> str:
        pools = {"own": own.codes(), "other": other.codes()}
        if choice == "invalid":
            return "団員 1"
        if pools.get(choice):
            return data.draw(st.sampled_from(pools[choice]), label=f"{choice} code")
        return fresh_code()

    def settle(self, own: Brigade, outcome: str, write: bool = True) -> None:
        if write:
            own.audit_seq += WRITE_AUDITED.get(outcome, 0)
        STATS[f"outcome.{outcome}"] += 1

    def expect(self, outcome: str, expected: str, result: Any) -> None:
        note(f"→ {outcome} (expected {expected}): {result!r}"[:300])
        assert outcome == expected, f"expected {expected}, got {outcome}: {result!r}"

    def check_public(self, own: Brigade, member: MemberPublic) -> None:
        assert member.id in own.members, f"{member.id} is not a member of brigade {own.key}"
        assert Row.of(member) == own.members[member.id]

    # -- rules --------------------------------------------------------------------------------

    @rule(who=ACTORS, name=NAMES, kana=KANAS, phone=PHONES, code=CODES, rank=REFS, data=st.data())
    def create_member(self, who, name, kana, phone, code, rank, data) -> None:
        own, other, actor, is_admin = self.act(who)
        role = data.draw(st.sampled_from(["none", "own", "other"]), label="role")
        member_code = self.code(data, code, own, other)
        rank_id = self.ref(data, rank, own, other, "rank")
        role_ids = [] if role == "none" else [self.ref(data, role, own, other, "role")]
        for whose, what in ((rank, "rank_ref"), (role, "role_ref"), (code, "code_reuse")):
            if whose == "other":
                self.crossed(what, is_admin)
        invalid = (
            name_problem(name, 50)
            or code == "invalid"
            or member_code in own.codes()
            or "other" in (rank, role)
            or kana == "Yamada"
            or phone == "12345"
        )
        data_in = MemberCreate(
            member_code=member_code,
            name=name,
            kana=kana,
            phone=phone,
            rank_id=rank_id,
            role_ids=role_ids,
        )
        outcome, result = attempt(lambda: members.create_member(actor, data=data_in))
        expected = "denied" if not is_admin else "invalid" if invalid else "ok"
        self.expect(outcome, expected, result)
        self.settle(own, outcome)
        if outcome == "ok":
            assert result.id not in own.members and result.id not in other.members
            assert (result.name, result.status, result.version) == (clean_text(name), "active", 1)
            assert result.rank_id in own.ranks and set(result.role_ids) <= set(own.roles.values())
            own.members[result.id] = Row.of(result)

    @rule(
        who=ACTORS,
        stale=st.booleans(),
        name=st.none() | NAMES,
        phone=st.none() | PHONES,
        code=st.none() | CODES,
        rank=st.none() | REFS,
        role=st.none() | REFS,
        data=st.data(),
    )
    def update_member(self, who, stale, name, phone, code, rank, role, data) -> None:
        own, other, actor, is_admin = self.act(who)
        member_id, holder = self.target(data)
        if holder is other:
            self.crossed("update", is_admin)
        if "other" in (rank, role, code):
            self.crossed("update_ref", is_admin)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = name
        if phone is not None:
            changes["phone"] = phone
        if code is not None:
            changes["member_code"] = self.code(data, code, own, other)
        if rank is not None:
            changes["rank_id"] = self.ref(data, rank, own, other, "rank")
        if role is not None:
            picked = self.ref(data, role, own, other, "role")
            changes["role_ids"] = [picked] if picked else []
        version = holder.members[member_id].version if holder else 1
        taken = [r.code for i, r in own.members.items() if i != member_id]
        invalid = (
            (name is not None and name_problem(name, 50))
            or phone == "12345"
            or code == "invalid"
            or changes.get("member_code") in taken
            or "other" in (rank, role)
        )
        if not is_admin:
            expected = "denied"
        elif holder is not own:
            expected = "not_found"
        elif stale:
            expected = "conflict"
        else:
            expected = "invalid" if invalid else "ok"
        outcome, result = attempt(
            lambda: members.update_member(
                actor,
                member_id,
                data=MemberUpdate(**changes),
                expected_version=version + (1 if stale else 0),
            )
        )
        self.expect(outcome, expected, result)
        self.settle(own, outcome)
        if outcome == "ok":
            assert result.id == member_id and result.version == version + 1
            own.members[member_id] = Row.of(result)

    @rule(who=ACTORS, status=st.sampled_from(list(MemberStatus)), data=st.data())
    def change_status(self, who, status, data) -> None:
        own, other, actor, is_admin = self.act(who)
        member_id, holder = self.target(data)
        if holder is other:
            self.crossed("status", is_admin)
        change = {
            MemberStatus.SUSPENDED: members.suspend_member,
            MemberStatus.ACTIVE: members.reactivate_member,
            MemberStatus.RETIRED: members.retire_member,
        }[status]
        if not is_admin:
            expected = "denied"
        elif holder is not own:
            expected = "not_found"
        else:
            current = own.members[member_id].status
            retired_back = status == MemberStatus.ACTIVE and current == MemberStatus.RETIRED
            expected = "invalid" if current == status or retired_back else "ok"
        outcome, result = attempt(lambda: change(actor, member_id))
        self.expect(outcome, expected, result)
        self.settle(own, outcome)
        if outcome == "ok":
            row = own.members[member_id]
            assert (result.id, result.status, result.version) == (
                member_id,
                status,
                row.version + 1,
            )
            own.members[member_id] = Row.of(result)

    @rule(who=ACTORS, data=st.data())
    def get_member(self, who, data) -> None:
        own, other, actor, is_admin = self.act(who)
        member_id, holder = self.target(data)
        if holder is other:
            self.crossed("get", is_admin)
        outcome, result = attempt(lambda: members.get_member(actor, member_id))
        self.expect(outcome, "ok" if holder is own else "not_found", result)
        self.settle(own, outcome, write=False)
        if outcome == "ok":
            self.check_public(own, result)

    @rule(
        who=ACTORS,
        source=st.sampled_from(["", "text", "own", "other"]),
        by=st.sampled_from([None, "rank", "role"]),
        whose=REFS,
        data=st.data(),
    )
    def list_members(self, who, source, by, whose, data) -> None:
        own, other, actor, is_admin = self.act(who)
        if source == "text":
            text = data.draw(st.text(PLAIN, max_size=6), label="search")
        elif source:
            brigade = own if source == "own" else other
            row = data.draw(st.sampled_from(list(brigade.members.values())), label="row")
            text = data.draw(st.sampled_from([row.name, row.kana, row.code]), label="search")
            if source == "other":
                self.crossed("search", is_admin)
        else:
            text = ""
        picked = self.ref(data, whose, own, other, by) if by else None
        if picked and whose == "other":
            self.crossed(f"filter_{by}", is_admin)
        wanted = (picked,) if picked else ()
        filters = MemberFilter(
            text=text,
            rank_ids=wanted if by == "rank" else (),
            role_ids=wanted if by == "role" else (),
        )
        outcome, result = attempt(lambda: members.list_members(actor, filters))
        self.expect(outcome, "ok", result)
        self.settle(own, outcome, write=False)
        needle = search_key(text)
        expected = {
            i
            for i, r in own.members.items()
            if needle in search_key(r.name)
            or needle in search_key(r.kana)
            or needle in r.code.lower()
        }
        if picked:
            expected = {
                i for i in expected if picked in {own.members[i].rank_id, *own.members[i].role_ids}
            }
        for member in result:
            self.check_public(own, member)
        assert {m.id for m in result} == expected

    @rule(
        who=ACTORS,
        name=ROLE_NAMES,
        source=st.sampled_from(["new", "own", "other"]),
        rank=REFS,
        data=st.data(),
    )
    def create_role(self, who, name, source, rank, data) -> None:
        own, other, actor, is_admin = self.act(who)
        brigade = own if source == "own" else other
        if source != "new" and brigade.roles:
            name = data.draw(st.sampled_from(sorted(brigade.roles)), label="role name")
        if "other" in (source, rank):
            self.crossed("role", is_admin)
        rank_id = self.ref(data, rank, own, other, "rank")
        invalid = name_problem(name, 40) or clean_text(name) in own.roles or rank == "other"
        expected = "denied" if not is_admin else "invalid" if invalid else "ok"
        outcome, result = attempt(lambda: roles.create_role(actor, name=name, rank_id=rank_id))
        self.expect(outcome, expected, result)
        self.settle(own, outcome)
        if outcome == "ok":
            assert result not in other.roles.values()
            own.roles[clean_text(name)] = result

    @rule(
        who=ACTORS,
        codes=st.lists(
            st.sampled_from(["fresh", "fresh", "own", "other", "repeat"]), min_size=1, max_size=3
        ),
        kinds=st.lists(WATER_KINDS, min_size=3, max_size=3),
        memo=st.text(PLAIN, max_size=20),
        data=st.data(),
    )
    def add_water_sources(self, who, codes, kinds, memo, data) -> None:
        own, other, actor, is_admin = self.act(who)
        batch: list[str] = []
        for choice in codes:
            pool = (
                {"own": own.water_codes, "other": other.water_codes, "repeat": batch}[choice]
                if choice != "fresh"
                else ()
            )
            batch.append(data.draw(st.sampled_from(sorted(pool))) if pool else fresh_code("W"))
            if choice == "other" and pool:
                self.crossed("water_code_reuse", is_admin)
        items = [
            WaterSourceBase(code=code, kind=kind, memo=memo)
            for code, kind in zip(batch, kinds, strict=False)
        ]
        invalid = (
            any(item.kind == "温泉" for item in items)
            or len(set(batch)) < len(batch)
            or bool(own.water_codes & set(batch))
        )
        expected = "denied" if not is_admin else "invalid" if invalid else "ok"
        outcome, result = attempt(lambda: water_sources.add_water_sources(actor, items))
        self.expect(outcome, expected, result)
        self.settle(own, outcome)
        if outcome == "ok":
            assert result == len(items)
            own.water_codes |= set(batch)

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def each_brigade_matches_the_model(self) -> None:
        for brigade in self.brigades.values():
            seen = roster(brigade.admin)
            if brigade.key != self.acting:
                assert seen == brigade.seen, f"brigade {brigade.key} changed by the other's actor"
            assert seen == brigade.snapshot()
            brigade.seen = seen
            assert {r.id for r in members.list_roles(brigade.admin)} == set(brigade.roles.values())
            assert water_codes(brigade.id) == brigade.water_codes
            assert audit_head(brigade.id) == brigade.audit_seq

    def teardown(self) -> None:
        STATS["runs_with_cross_tenant"] += bool(self.cross_tenant)
        STATS["cross_tenant_max_per_run"] = max(
            STATS["cross_tenant_max_per_run"], self.cross_tenant
        )
        note(f"cross-tenant attempts this run: {self.cross_tenant}")


TenantIsolation.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestTenantIsolation = TenantIsolation.TestCase


@pytest.fixture(scope="module", autouse=True)
def _database_and_summary(engine, request):
    """The machine cannot take fixtures: this gives it the database, and afterwards checks that
    the runs really tried to cross between brigades."""
    STATS.clear()
    yield
    if not STATS["runs"]:
        return
    summary = ", ".join(f"{k}={v}" for k, v in sorted(STATS.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        print(f"\n[isolation property, {engine.dialect.name}] {summary}")
    assert STATS["cross_tenant"] > 0, f"no cross-tenant attempt was made: {summary}"
    assert STATS["cross_tenant.by_admin"] > 0, f"no admin tried another brigade: {summary}"


NUL_INPUTS: dict[str, Callable[[uuid.UUID], object]] = {
    "role.name": lambda t: roles.create_role(
        admin(t), name="係\x00", rank_id=members.list_ranks(admin(t))[0].id
    ),
    "water_source.memo": lambda t: water_sources.add_water_sources(
        admin(t), [WaterSourceBase(code=fresh_code("W"), kind="消火栓", memo="a\x00")]
    ),
    "member.notes": lambda t: members.create_member(
        admin(t),
        data=MemberCreate(
            member_code=fresh_code(),
            name="消防　一郎",
            rank_id=members.list_ranks(admin(t))[0].id,
            notes="x\x00",
        ),
    ),
}


@pytest.mark.parametrize("field", list(NUL_INPUTS))
def test_nul_in_plain_text_is_a_validation_error(engine, field):
    with pytest.raises(ValidationError):
        NUL_INPUTS[field](make_tenant())
