"""はじめの設定 on ホーム (#18): the brigade's setup steps, each ticked from its data, the open
ones explained with a link to the page that does them.

While a required step is open the list stands in full; once only optional (任意) steps are open
it folds into one closed line, so a brigade that does without them is not nagged on every visit;
when every step is done it is gone (it comes back by itself if a step is undone)."""

from __future__ import annotations

import streamlit as st

from core.actor import Actor
from services import setup_checklist
from services.errors import ServiceError
from services.setup_checklist import Checklist, Step
from ui.common import plain
from ui.registry import PageSpec, specs_for

TITLE = "はじめの設定"


def _checklist(actor: Actor) -> Checklist | None:
    """The brigade's steps, or None for an actor who is not offered them (or whose rights
    changed since this run began: the list is a courtesy, never an error on the first page)."""
    if not setup_checklist.offered(actor):
        return None
    try:
        return setup_checklist.checklist(actor)
    except ServiceError:
        return None


def show_setup_checklist(actor: Actor) -> None:
    if (checklist := _checklist(actor)) is None:
        return
    if not checklist.open_steps:
        return
    pages = {spec.url_path: spec for spec in specs_for(actor)}
    if checklist.required_open:
        st.subheader(TITLE)
        done = len(checklist.steps) - len(checklist.open_steps)
        st.caption(f"{done}/{len(checklist.steps)} 件完了。設定が済むと自動でチェックが付きます。")
        _steps(checklist, pages)
        return
    optional = len(checklist.open_steps)
    with st.expander(
        f"{TITLE}: 必要な設定は完了しました（任意の項目 {optional}件が未設定）",
        icon=":material/checklist:",
    ):
        _steps(checklist, pages)


def _steps(checklist: Checklist, pages: dict[str, PageSpec]) -> None:
    for step in checklist.steps:
        if step.done:
            st.markdown(_line(step))
            continue
        with st.container(border=True):
            st.markdown(_line(step))
            st.caption(step.hint)
            if (page := pages.get(step.page)) is not None:
                st.page_link(page.path, label=f"{page.title}を開く", icon=page.icon)


def _line(step: Step) -> str:
    mark = ":green[:material/check_circle:]" if step.done else ":material/radio_button_unchecked:"
    optional = "" if step.required else "（任意）"
    found = f"　{plain(step.found)}" if step.found else ""
    return f"{mark} **{step.label}**{optional}{found}"


def point_to_setup(actor: Actor) -> None:
    """On the first page an administrator lands on (ダッシュボード): one line while a required
    setup step is open, with a link to ホーム where the list stands."""
    checklist = _checklist(actor)
    if checklist is None or not checklist.required_open:
        return
    left = sum(1 for step in checklist.open_steps if step.required)
    with st.container(border=True):
        st.markdown(f":material/checklist: **{TITLE}**: 必要な設定があと {left}件あります。")
        home = next((s for s in specs_for(actor) if s.url_path == "home"), None)
        if home is not None:
            st.page_link(home.path, label="ホームで確認する", icon=home.icon)
