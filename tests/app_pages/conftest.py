"""AppTest on the real app, real services and the migrated test database.

AppTest has no browser connection: it cannot send cookies, and its st.context client details are
mocks. So `ui.common.session_token` returns the token of a real password login and
`request_context` a plain one; everything after them (session lookup, actor, permissions,
navigation, services, audit) runs unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import text_format
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block, Dataframe

import ui.common
from core.actor import RequestContext
from models import MemberPublic
from services.signin import local, sessions
from tests.factories import PLATFORM, make_member, rank_id

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PASSWORD = "correct horse battery staple"
REQUEST = RequestContext(client_addr="127.0.0.1", user_agent="AppTest")


@dataclass(frozen=True)
class SignedIn:
    tenant_id: uuid.UUID
    member: MemberPublic
    token: str


def sign_in(tenant_id: uuid.UUID, rank: str = "団長") -> SignedIn:
    """A member of the given rank with a local account, logged in with its password."""
    member = make_member(tenant_id, rank_id=rank_id(tenant_id, rank))
    login_name = f"page-{uuid.uuid4().hex[:10]}"
    local.create_account(
        PLATFORM,
        login_name=login_name,
        password=PASSWORD,
        tenant_id=tenant_id,
        member_id=member.id,
        display_name=member.name,
    )
    token = local.login(login_name, PASSWORD, RequestContext()).token
    assert token is not None
    return SignedIn(tenant_id, member, token)


@pytest.fixture
def open_app(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """Run app.py as the browser holding `token` (None: no cookie)."""

    def _open(token: str | None, **query: str) -> AppTest:
        monkeypatch.setattr(ui.common, "session_token", lambda: token)
        monkeypatch.setattr(ui.common, "request_context", lambda: REQUEST)
        at = AppTest.from_file(APP, default_timeout=30)
        at.query_params.update(query)
        return at.run()

    return _open


def run_page_directly(page: str, token: str) -> AppTest:
    """Run one page file on its own, as a signed-in actor whose navigation would not offer it:
    the page's own refusal is what is left to see."""
    at = AppTest.from_file(str(Path(APP).parent / page), default_timeout=30)
    at.session_state[ui.common.ACTOR_KEY] = sessions.resolve(token)
    return at.run()


def page_text(at: AppTest) -> str:
    """Everything the run rendered, as text: element protos and dataframe contents."""
    parts: list[str] = []

    def walk(node) -> None:
        if (proto := getattr(node, "proto", None)) is not None:
            parts.append(text_format.MessageToString(proto, as_utf8=True))
        if isinstance(node, Dataframe):
            parts.append(node.value.to_csv())
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    walk(at.sidebar)
    return "\n".join(parts)


def nav_registers(at: AppTest, page: str) -> bool:
    """Whether the last run's st.navigation registered `page` (AppTest refuses others)."""
    try:
        at.switch_page(page)
    except ValueError:
        return False
    return True


def open_dialog(at: AppTest) -> Block | None:
    """The modal dialog the last run opened (ui.confirm), or None."""
    dialogs = [d for d in at.get("dialog") if d.proto.dialog.is_open]
    assert len(dialogs) <= 1
    return dialogs[0] if dialogs else None


def dialog_lines(at: AppTest) -> list[str]:
    """The text of the open dialog: the question, then the lines under it."""
    dialog = open_dialog(at)
    assert dialog is not None, "no dialog is open"
    return [t.value for t in dialog.text] + [c.value for c in dialog.caption]


def answer(at: AppTest, label: str) -> AppTest:
    """Press 実行する or キャンセル in the open dialog."""
    dialog = open_dialog(at)
    assert dialog is not None, "no dialog is open"
    return next(b for b in dialog.button if b.label == label).click().run()
