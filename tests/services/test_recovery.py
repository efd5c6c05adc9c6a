"""Recovery of a locked-out brigade (#15): the command line and the operator lift a
suspension, readmit, and give 役職・権限 管理; a member cannot."""

from __future__ import annotations

import json
import uuid

import pytest

from core.actor import Actor, ActorKind
from models.enums import Function, Level, MemberStatus
from models.tenant import PLATFORM_TENANT_ID
from services import members, recovery, tenants
from services.errors import PermissionDenied, ValidationError
from services.signin import local, sessions
from tests.factories import (
    PASSWORD,
    PLATFORM,
    admin,
    audit_events,
    give_login,
    last_audit_seq,
    make_member,
    make_tenant,
    open_member_session,
    rank_id,
    request_context,
)

OPERATOR = Actor(kind=ActorKind.OPERATOR, display_name="運営", label="operator")


def test_a_suspended_administrator_is_let_back_in_and_given_admin(engine):
    tenant = make_tenant()
    chief = make_member(tenant, rank_id=rank_id(tenant, "団員"), member_code="C1")
    login = give_login(tenant, chief.id)
    members.suspend_member(admin(tenant), chief.id)
    assert local.login(login, PASSWORD, request_context()).token is None
    seq = last_audit_seq(engine, tenant), last_audit_seq(engine, PLATFORM_TENANT_ID)

    result = recovery.recover_member(OPERATOR, tenant_id=tenant, member_code="C1", give_admin=True)

    assert result.done == ["利用停止を解除", "役職「権限管理（復旧）」（役職・権限 管理）を付与"]
    token = local.login(login, PASSWORD, request_context()).token
    actor = sessions.resolve(token)
    assert actor is not None and actor.level(Function.PERMISSIONS) == Level.ADMIN
    for chain, after in zip((tenant, PLATFORM_TENANT_ID), seq, strict=True):
        (event,) = [
            e for e in audit_events(engine, chain, after_seq=after) if e.action == "member.recover"
        ]
        assert (event.actor_type, json.loads(event.details)["member_code"]) == ("operator", "C1")


def test_a_retired_member_is_readmitted_and_nothing_to_do_is_said(engine):
    tenant = make_tenant()
    member = make_member(tenant, member_code="R1")
    members.retire_member(admin(tenant), member.id)
    assert recovery.recover_member(PLATFORM, tenant_id=tenant, member_code="R1").done == ["再入団"]
    with pytest.raises(ValidationError):
        recovery.recover_member(PLATFORM, tenant_id=tenant, member_code="R1")
    with pytest.raises(ValidationError, match="X9"):
        recovery.recover_member(PLATFORM, tenant_id=tenant, member_code="X9")


def test_a_member_even_an_administrator_cannot_use_it(engine):
    tenant = make_tenant()
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"), member_code="C1")
    actor = sessions.resolve(open_member_session(tenant, chief.id))
    with pytest.raises(PermissionDenied):
        recovery.recover_member(actor, tenant_id=tenant, member_code="C1", give_admin=True)


def test_the_command_line_recovers_by_brigade_name(engine, capsys):
    import cli

    name = f"復旧消防団{uuid.uuid4().hex[:6]}"
    tenant = tenants.create_tenant(PLATFORM, name=name)
    member = make_member(tenant, member_code="M7")
    members.suspend_member(admin(tenant), member.id)
    with pytest.raises(SystemExit) as done:
        cli.main(["recover", name, "M7", "--give-admin"])
    assert done.value.code == 0
    assert f"OK  {name} M7: 利用停止を解除" in capsys.readouterr().out
    assert members.get_member(admin(tenant), member.id).status == MemberStatus.ACTIVE
    with pytest.raises(SystemExit) as refused:
        cli.main(["recover", "ない消防団", "M7"])
    assert refused.value.code == 1
    with pytest.raises(SystemExit) as unknown:
        cli.main(["recover", name, "X9"])
    assert unknown.value.code == 1
    assert capsys.readouterr().out.splitlines()[-1] == "NG  団員番号「X9」の団員はいません。"
