"""Which pages an actor gets. A page the actor may not view is not registered at all."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from auth.actor import Actor
from services.catalog import Function, Level


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    function: Function | None  # None: every signed-in brigade user
    url_path: str


MEMBER_PAGES = (
    PageSpec("app_pages/home.py", "ホーム", ":material/home:", None, "home"),
    PageSpec("app_pages/roster.py", "団員名簿", ":material/groups:", Function.ROSTER, "roster"),
)
OPERATOR_PAGES = (
    PageSpec("app_pages/brigades.py", "消防団管理", ":material/apartment:", None, "brigades"),
)
LOGIN_PAGE = PageSpec("app_pages/login.py", "ログイン", ":material/login:", None, "login")


def specs_for(actor: Actor | None) -> tuple[PageSpec, ...]:
    if actor is None:
        return (LOGIN_PAGE,)
    if actor.is_operator:
        return OPERATOR_PAGES
    return tuple(p for p in MEMBER_PAGES if p.function is None or actor.can(p.function, Level.VIEW))


def pages_for(actor: Actor | None) -> list[st.Page]:
    return [
        st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path)
        for spec in specs_for(actor)
    ]
