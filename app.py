"""Streamlit entry point: who is this? → their pages → run the chosen page."""

from __future__ import annotations

import streamlit as st

from ui import notice_banner
from ui.common import resolve_actor, session_end_text, session_expiry_html
from ui.registry import pages_for

st.set_page_config(page_title="火消し Hikeshi", page_icon="🚒", layout="wide")

actor = resolve_actor()
# expanded: with every page a 団長 has, a collapsed menu would hide the last ones behind
# "View more"
navigation = st.navigation(
    pages_for(actor), position="sidebar" if actor else "hidden", expanded=True
)

if actor is not None:
    with st.sidebar:
        pending_line = actor.kind.startswith("line_")
        st.markdown(f"**{actor.tenant_name or ('LINEログイン' if pending_line else '運営管理')}**")
        st.caption(
            f"{actor.display_name}"
            + (
                f"（{actor.rank_name}{'・' + '・'.join(actor.role_names) if actor.role_names else ''}）"
                if actor.rank_name
                else ""
            )
        )
        if actor.session_ends_at is not None:
            st.caption(session_end_text(actor))
            st.html(session_expiry_html(actor))
        st.html(
            '<form method="post" action="/auth/logout">'
            '<button type="submit" class="hikeshi-logout">ログアウト</button></form>'
            "<style>.hikeshi-logout{padding:.35rem .9rem;border:1px solid #bbb;"
            "border-radius:.4rem;background:#fff;cursor:pointer}</style>"
        )

notice_banner.show(actor)
navigation.run()
