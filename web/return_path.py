"""Where a sign-in returns to: the page a signed-out browser asked for (the call-out's LINE link
to /turnout?incident=…), carried through the login as ?next= and a short-lived cookie.

Only a path on this server is accepted. Anything that a browser could read as another origin
(`//host`, `/\\host`, a scheme, control characters or spaces, which browsers strip or fold into
the host) falls back to "/": a login must not become an open redirect (CWE-601)."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

NEXT_PARAM = "next"
NEXT_COOKIE = "hikeshi_next"
MAX_LENGTH = 500
HOME = "/"


def safe_return_path(value: str | None) -> str:
    """value if it is a same-origin path (with its query), else HOME."""
    if not value or len(value) > MAX_LENGTH or not value.startswith("/") or "\\" in value:
        return HOME  # browsers read /\host as //host
    if not all(0x21 <= ord(ch) <= 0x7E for ch in value):
        return HOME  # printable ASCII only: the login page sends the path percent-encoded
    parts = urlsplit(value)
    # /auth/… are the sign-in routes themselves: no loops through them, however spelt
    path = posixpath.normpath(unquote(parts.path))
    if parts.scheme or parts.netloc or path == "/auth" or path.startswith(("/auth/", "//")):
        return HOME
    return value
