"""Destructive actions (suspend, retire, unlink, delete) ask first (issue #15): a button opens a
modal dialog that names the member (or the record) and the action, and only 「実行する」 runs it,
through run_action.

Which question is open is kept in session state (the button's key and the question's text), not
only in the dialog's own fragment: a rerun of the whole page (AppTest knows no other) shows the
same dialog again, and a question whose text no longer matches the page (another member chosen)
is dropped instead of acting on the wrong member. Closing the dialog (キャンセル, ×, Esc) forgets
it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ui.common import run_action

PENDING_KEY = "_hikeshi_confirm"
SELF_ACTION = "自分自身の利用停止・退団・連携解除はできません。"


def named(name: str, code: str) -> str:
    """How a question names one member: 「消防 太郎 さん（A-0001）」."""
    return f"{name} さん（{code}）"


@dataclass(frozen=True)
class Confirmation:
    """One question: `message` (and the `details` lines under it) say whom the action touches;
    the rest is handed to run_action when the answer is 「実行する」."""

    message: str
    action: Callable[[], Any]
    notice: str | Callable[[Any], str]
    notice_key: str
    details: tuple[str, ...] = ()
    then: Callable[[Any], None] | None = None
    forget: tuple[str, ...] = ()


def _forget() -> None:
    st.session_state.pop(PENDING_KEY, None)


@st.dialog("操作の確認", on_dismiss=_forget)
def _ask(question: Confirmation) -> None:
    st.text(question.message)
    for line in question.details:
        st.caption(line)
    cols = st.columns(2)
    if cols[0].button("実行する", type="primary", key="confirm_run", width="stretch"):

        def done(result: Any) -> None:
            _forget()
            if question.then is not None:
                question.then(result)

        run_action(
            question.action,
            question.notice,
            notice_key=question.notice_key,
            then=done,
            forget=question.forget,
        )
    if cols[1].button("キャンセル", key="confirm_cancel", width="stretch"):
        _forget()
        st.rerun()


def confirm_button(
    where: DeltaGenerator, label: str, question: Confirmation, *, key: str, **button: Any
) -> None:
    """A button that opens the dialog asking `question`; the action runs only from there."""
    if where.button(label, key=key, **button):
        st.session_state[PENDING_KEY] = (key, question.message, question.details)
    pending = st.session_state.get(PENDING_KEY)
    if pending is None or pending[0] != key:
        return
    if pending[1:] != (question.message, question.details):
        _forget()
        return
    _ask(question)
