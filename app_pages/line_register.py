"""LINE連携の登録: a LINE login bound to no member enters the user id and registration code
from their sheet. A plain HTML form posts to /auth/line/register, which swaps the session."""

from __future__ import annotations

from html import escape

import streamlit as st

from services import registrations
from ui.common import current_actor

actor = current_actor()

st.title("LINE連携の登録")
st.write(
    "LINEでのログインを確認しました。団の管理者から受け取った「登録のご案内」に記載の"
    "ユーザIDと登録コードを入力してください。"
)
if (error := st.query_params.get("register_error")) in registrations.MESSAGES:
    st.error(registrations.MESSAGES[error])

user_id = escape(registrations.pending_user_id(actor))
st.html(
    f"""
<form method="post" action="/auth/line/register" class="hikeshi-register">
  <label>ユーザID<br><input name="user_id" value="{user_id}" required maxlength="40"
    autocomplete="off" autocapitalize="characters" placeholder="例: ABCD-EFGH"></label>
  <label>登録コード<br><input name="code" required maxlength="40" autocomplete="one-time-code"
    autocapitalize="characters" placeholder="例: ABCD-EFGH-JKMN"></label>
  <button type="submit">登録する</button>
</form>
<style>
.hikeshi-register {{ display: flex; flex-direction: column; gap: .8rem; max-width: 22rem; }}
.hikeshi-register input {{ width: 100%; padding: .5rem; font-size: 1.1rem; letter-spacing: .05em;
  border: 1px solid #bbb; border-radius: .4rem; box-sizing: border-box; }}
.hikeshi-register button {{ padding: .6rem; font-size: 1rem; background: #c62828; color: #fff;
  border: 0; border-radius: .4rem; cursor: pointer; }}
</style>
"""
)
st.caption(
    "登録コードを5回続けて間違えると、この登録はロックされます。登録の用紙をお持ちでない方は、"
    "団の管理者にお問い合わせください。"
)
