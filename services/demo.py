"""Seed the fictional demo brigade (デモ市消防団) through the services. Idempotent."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date

from core.actor import Actor, ActorKind, system_actor
from core.rewards import MISAWA
from formats.dispatch_profile import EXAMPLE_PROFILES
from models import MemberCreate
from models.water import WaterSourceBase
from services import demo_data, members, tenants, water_sources
from services import roles as roles_service
from services.dispatch import sources
from services.errors import NotFound
from services.reports import rewards
from services.signin import local

ADMIN_LOGIN = "demo-admin"
# The demo's 消防本部: its mail is read by the first example profile (【】-bracket layout);
# `cli.py send-test-mail` sends a sample in that layout from this sender.
DISPATCH_SENDER = "shirei@demo-fd.example.jp"
PLATFORM = Actor(kind=ActorKind.SYSTEM, display_name="seed", label="seed-demo")


@dataclass(frozen=True)
class SeedResult:
    created: bool
    admin_login: str = ADMIN_LOGIN
    admin_password: str | None = None


def seed_demo(*, today: date | None = None) -> SeedResult:
    today = today or date.today()
    name = demo_data.DEMO_BRIGADE["name"]
    try:
        tenants.get_tenant_by_name(PLATFORM, name)
        return SeedResult(created=False)
    except NotFound:
        pass
    tenant_id = tenants.create_tenant(
        PLATFORM, name=name, municipality=demo_data.DEMO_BRIGADE["municipality"]
    )
    seeder = system_actor(tenant_id, label="seed-demo")
    ranks = {r.name: r for r in members.list_ranks(seeder)}
    roles = {
        role_name: roles_service.create_role(seeder, name=role_name, rank_id=ranks[rank_name].id)
        for role_name, rank_name in demo_data.DEMO_ROLES.items()
    }
    admin_id = None
    for m in demo_data.generate_members(today=today):
        created = members.create_member(
            seeder,
            data=MemberCreate(
                member_code=m.member_code,
                name=m.name,
                kana=m.kana,
                rank_id=ranks[m.rank].id,
                role_ids=[roles[r] for r in m.roles],
                affiliation=m.affiliation,
                phone=m.phone,
                email=m.email,
                joined_on=m.joined_on,
                notes=m.notes,
            ),
        )
        if m.status == "suspended":
            members.suspend_member(seeder, created.id)
        elif m.status == "retired":
            members.retire_member(seeder, created.id)
        if m.rank == "団長":
            admin_id = created.id
    water_sources.add_water_sources(
        seeder,
        [
            WaterSourceBase.model_validate(w, from_attributes=True)
            for w in demo_data.generate_water_sources(today=today)
        ],
    )
    profile = next(iter(EXAMPLE_PROFILES.values())).to_dict()
    profile["vocabulary"] = {unit: unit for unit in demo_data.DEMO_UNITS}
    sources.create_source(
        seeder,
        sources.SourceInput(name="デモ市消防本部", senders=(DISPATCH_SENDER,), profile=profile),
    )
    # the demo pays by 三沢市's table, so the month's export has amounts from the start
    rewards.save_reward_table(seeder, MISAWA, expected_version=0)
    password = secrets.token_urlsafe(12)
    local.create_account(
        PLATFORM,
        login_name=ADMIN_LOGIN,
        password=password,
        tenant_id=tenant_id,
        member_id=admin_id,
        display_name="デモ団長",
    )
    return SeedResult(created=True, admin_password=password)
