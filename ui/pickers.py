"""Member pickers that start empty and start empty again after each action (issue #15): nobody,
the signed-in user included, is chosen until somebody is chosen on purpose.

A page's widgets that must not outlive an action (the picker, a table selection) take their key
from `fresh_key`; `next_round` (called once an action is done) moves every such key on, so the
next run draws them new and empty."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

T = TypeVar("T")

PLACEHOLDER = "団員を選択してください"


def _round_key(page: str) -> str:
    return f"_hikeshi_round_{page}"


def fresh_key(page: str, name: str) -> str:
    return f"{page}_{name}_{st.session_state.get(_round_key(page), 0)}"


def next_round(page: str) -> Callable[[Any], None]:
    """A run_action `then`: after the action, the page's fresh widgets start over."""

    def move_on(_result: Any) -> None:
        key = _round_key(page)
        st.session_state[key] = st.session_state.get(key, 0) + 1

    return move_on


def member_picker(
    where: DeltaGenerator,
    label: str,
    options: Sequence[T],
    *,
    page: str,
    format_func: Callable[[T], str],
) -> T | None:
    return where.selectbox(
        label,
        options,
        index=None,
        placeholder=PLACEHOLDER,
        format_func=format_func,
        key=fresh_key(page, "member"),
    )
