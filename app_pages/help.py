"""ヘルプ: the administrator's manual (docs/manual/), one chapter at a time. Every signed-in
member of a brigade gets this page: the manual holds no brigade data, and a member who is given
more rights later finds their pages described already."""

from __future__ import annotations

import streamlit as st

from ui import manual
from ui.common import current_actor

current_actor()
st.title("ヘルプ")
st.caption(
    "火消しの管理者向けマニュアルです。画面の画像はデモ用の架空の消防団のものです。"
    "表示されるメニューは、あなたの階級・役職の権限によって異なります。"
)
chapter = st.selectbox(
    "章",
    manual.chapters(),
    format_func=lambda c: c.title,
    key="help_chapter",
    placeholder="選択してください",
)
st.divider()
manual.show_chapter(chapter)
