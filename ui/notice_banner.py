"""The platform's notices at the top of every page: maintenance starting within a week, or
under way, and incidents."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from core.actor import Actor
from core.timefmt import to_jst
from services import notices


def show(actor: Actor | None) -> None:
    now = datetime.now(UTC)
    for notice in notices.current_notices(actor, now=now):
        if not notice.banner(now):
            continue
        until = f"〜{to_jst(notice.ends_at)}" if notice.ends_at else "〜"
        text = f"**【{notice.kind_label}】{notice.title}**（{to_jst(notice.starts_at)}{until} JST）"
        if notice.body:
            text += f"\n\n{notice.body}"
        (st.error if notice.in_progress(now) else st.info)(text, icon=":material/campaign:")
