"""A page of the app the signed-in actor may not see (opened by its address: a bookmark, an old
link, a page of another kind of account). Registered hidden by ui/registry.py at every such
address, so the browser gets this Japanese refusal instead of Streamlit's English dialog. The
services refuse again on every call; this page reads nothing."""

from __future__ import annotations

import streamlit as st

st.title("このページは表示できません")
st.error("このページを表示する権限がありません。")
st.write(
    "このアカウントでは使えないページか、権限が変わった可能性があります。"
    "必要な場合は、団の管理者にお問い合わせください。"
)
st.html('<a href="/" target="_self">最初のページへ戻る</a>')
