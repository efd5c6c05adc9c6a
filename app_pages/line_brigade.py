"""消防団の選択: a LINE account linked in several brigades picks the one to work in."""

from __future__ import annotations

from html import escape

import streamlit as st

from services.signin import line_sessions
from ui.common import current_actor

actor = current_actor()

st.title("消防団の選択")
st.write("このLINEアカウントは複数の消防団に登録されています。利用する消防団を選んでください。")

choices = line_sessions.brigade_choices(actor)
if not choices:
    st.warning("選べる消防団がありません。いったんログアウトして、もう一度お試しください。")
for choice in choices:
    st.html(
        f"""
<form method="post" action="/auth/line/brigade" class="hikeshi-brigade">
  <input type="hidden" name="tenant_id" value="{choice.tenant_id}">
  <button type="submit">{escape(choice.name)}</button>
</form>
<style>
.hikeshi-brigade button {{ min-width: 18rem; padding: .7rem 1rem; font-size: 1rem;
  background: #fff; border: 1px solid #c62828; color: #c62828; border-radius: .4rem;
  cursor: pointer; text-align: left; }}
</style>
"""
    )
