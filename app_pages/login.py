"""Login page: a plain HTML form that posts to /auth/login, which sets the HttpOnly cookie.

A signed-out browser that asked for another page (the call-out's link /turnout?incident=…) is
shown this page instead; both ways of signing in carry that page as `next`, and the server
returns there only if it is a path of this site (web/return_path.py)."""

from __future__ import annotations

from html import escape
from urllib.parse import quote, urlencode, urlsplit

import streamlit as st

from services.signin import line
from services.signin.local import MESSAGES
from ui.common import ENDED_KEY

st.title("火消し Hikeshi")
st.caption("消防団の組織運営・災害対応支援")

if (error := st.query_params.get("login_error")) in MESSAGES:
    st.error(MESSAGES[error])
elif (error := st.query_params.get("line_error")) in line.MESSAGES:
    st.error(line.MESSAGES[error])
elif st.query_params.get("logged_out"):
    st.success("ログアウトしました。")
elif ended := st.session_state.get(ENDED_KEY):
    st.warning(ended)

# Read on the first run only: the browser's address becomes "/" once this page is shown.
if "login_return" not in st.session_state:
    path = urlsplit(st.context.url or "").path
    query = urlencode(st.query_params.to_dict())
    asked = path not in ("", "/", "/login")
    st.session_state["login_return"] = path + (f"?{query}" if query else "") if asked else ""
back = st.session_state["login_return"]

st.subheader("ログイン")
st.html(
    f'<form method="post" action="/auth/login" class="hikeshi-login">'
    f'<input type="hidden" name="next" value="{escape(back)}">'
    """
  <label>ログイン名<br><input name="login_name" autocomplete="username" required maxlength="80"></label>
  <label>パスワード<br><input name="password" type="password" autocomplete="current-password"
    required maxlength="200"></label>
  <button type="submit">ログイン</button>
</form>
<style>
.hikeshi-login { display: flex; flex-direction: column; gap: .8rem; max-width: 22rem; }
.hikeshi-login input { width: 100%; padding: .5rem; font-size: 1rem; border: 1px solid #bbb;
  border-radius: .4rem; box-sizing: border-box; }
.hikeshi-login button { padding: .6rem; font-size: 1rem; background: #c62828; color: #fff;
  border: 0; border-radius: .4rem; cursor: pointer; }
</style>
"""
)

if line.is_configured():
    st.subheader("団員の方")
    line_login = "/auth/line/login" + (f"?next={quote(back, safe='')}" if back else "")
    st.html(
        f'<a href="{escape(line_login)}" class="hikeshi-line" target="_self">LINEでログイン</a>'
        """
<style>
.hikeshi-line { display: inline-block; padding: .65rem 1.4rem; font-size: 1rem; font-weight: bold;
  background: #06c755; color: #fff !important; border-radius: .4rem; text-decoration: none; }
.hikeshi-line:hover { background: #05b34c; }
</style>
"""
    )
