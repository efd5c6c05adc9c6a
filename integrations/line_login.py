"""LINE Login v2.1 (OpenID Connect) as a client: the authorization URL (state, nonce, PKCE), the
code exchange and ID token verification in our own code.

Web-login ID tokens are signed HS256 with the channel secret (no kid); ES256 tokens are checked
against the keys at the configured JWKS URL. No other algorithm is accepted, "none" included.
The flow's state, sessions and audit records are services.signin.line's.
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
)
from joserfc.jwk import ECKey, KeySet, OctKey
from joserfc.jws import extract_compact

from integrations.http import LoggedTransport, Recorder

SERVICE = "line"
ISSUER = "https://access.line.me"
ALGORITHMS = ("HS256", "ES256")
SCOPE = "openid profile"
CLOCK_LEEWAY_SECONDS = 60
JWKS_MAX_AGE_SECONDS = 3600
JWKS_REFRESH_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10
# The friendship status is asked while the member waits for the sign-in to finish, and the
# sign-in never depends on it: a slow answer is given up sooner than the login's own calls.
FRIENDSHIP_TIMEOUT_SECONDS = 3


class LineLoginError(Exception):
    """A step that failed; reason is a short code for the audit log (no token, no secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidIdToken(LineLoginError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"id_token:{reason}")


@dataclass(frozen=True)
class LineChannel:
    """A LINE Login channel and LINE's endpoints (configurable for a fake in tests)."""

    channel_id: str
    channel_secret: str
    redirect_uri: str
    authorize_url: str
    token_url: str
    jwks_url: str
    friendship_url: str


@dataclass(frozen=True)
class LoginTokens:
    """What the token endpoint returns for a code: the ID token to verify, and the access token
    that only the friendship status is asked with (never stored, never logged)."""

    id_token: str
    access_token: str = field(default="", repr=False)


def safe_code(text: str) -> str:
    """An error code from LINE, reduced to what an OAuth error code may contain."""
    return re.sub(r"[^a-z0-9_]", "", text.lower())[:40] or "unknown"


class LineLoginClient:
    def __init__(self, channel: LineChannel, record: Recorder) -> None:
        self.channel, self.record = channel, record

    def _oauth(self) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.channel.channel_id,
            client_secret=self.channel.channel_secret,
            token_endpoint_auth_method="client_secret_post",
            scope=SCOPE,
            redirect_uri=self.channel.redirect_uri,
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT_SECONDS,
            transport=LoggedTransport(SERVICE, self.record),
        )

    def authorization_url(self, *, state: str, code_verifier: str, **options: str) -> str:
        with self._oauth() as client:
            url, _ = client.create_authorization_url(
                self.channel.authorize_url, state=state, code_verifier=code_verifier, **options
            )
        return url

    def exchange_code(self, code: str, code_verifier: str) -> LoginTokens:
        """The tokens the token endpoint returns for an authorization code."""
        try:
            with self._oauth() as client:
                token = client.fetch_token(
                    self.channel.token_url,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except OAuthError as exc:
            raise LineLoginError(f"token_error:{safe_code(str(exc.error))}") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise LineLoginError("token_endpoint_failed") from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise LineLoginError("no_id_token")
        access_token = token.get("access_token")
        return LoginTokens(id_token, access_token if isinstance(access_token, str) else "")

    def friendship(self, access_token: str) -> bool | None:
        """Whether the user has the official account linked to this channel as a friend and has
        not blocked it (LINE tells neither "never added" nor "blocked" apart: both are False).
        Needs the profile scope. None when LINE did not answer it: refused (no linked account,
        scope or token), failed or timed out; the call is in the log either way."""
        transport = LoggedTransport(SERVICE, self.record)
        try:
            with httpx.Client(transport=transport, timeout=FRIENDSHIP_TIMEOUT_SECONDS) as client:
                response = client.get(
                    self.channel.friendship_url,
                    headers={"Authorization": f"Bearer {access_token}"},
                )
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        flag = body.get("friendFlag") if isinstance(body, dict) else None
        return flag if isinstance(flag, bool) else None

    def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The verified claims of a LINE ID token, or InvalidIdToken with the reason."""
        try:
            header = extract_compact(id_token.encode()).headers()
        except (JoseError, ValueError, UnicodeError) as exc:
            raise InvalidIdToken("malformed") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidIdToken("alg_not_allowed")
        key: OctKey | KeySet = (
            OctKey.import_key(self.channel.channel_secret.encode())
            if alg == "HS256"
            else self._jwks(header.get("kid"))
        )
        try:
            token = jwt.decode(id_token, key, algorithms=[alg])
        except InvalidKeyIdError as exc:
            raise InvalidIdToken("unknown_key") from exc
        except BadSignatureError as exc:
            raise InvalidIdToken("bad_signature") from exc
        except (JoseError, ValueError) as exc:
            raise InvalidIdToken("malformed") from exc
        check_claims(token.claims, nonce=nonce, audience=self.channel.channel_id)
        return token.claims

    def _jwks(self, kid: str | None) -> KeySet:
        """LINE's ES256 keys, cached; refetched (at most once a minute) when a kid is unknown."""
        url = self.channel.jwks_url
        fetched_at, keys = _jwks_cache.get(url, (0.0, KeySet([])))
        age = time.monotonic() - fetched_at
        known = any(k.kid == kid for k in keys)
        if age > JWKS_MAX_AGE_SECONDS or (not known and age > JWKS_REFRESH_SECONDS):
            try:
                transport = LoggedTransport(SERVICE, self.record)
                with httpx.Client(transport=transport, timeout=HTTP_TIMEOUT_SECONDS) as client:
                    response = client.get(url)
                response.raise_for_status()
                keys = KeySet(
                    [ECKey.import_key(k) for k in response.json()["keys"] if k.get("kty") == "EC"]
                )
            except (httpx.HTTPError, ValueError, KeyError, TypeError, JoseError) as exc:
                raise InvalidIdToken("jwks_unavailable") from exc
            _jwks_cache[url] = (time.monotonic(), keys)
        return keys


_jwks_cache: dict[str, tuple[float, KeySet]] = {}


def check_claims(claims: dict[str, Any], *, nonce: str, audience: str) -> None:
    registry = jwt.JWTClaimsRegistry(
        leeway=CLOCK_LEEWAY_SECONDS,
        iss={"essential": True, "value": ISSUER},
        sub={"essential": True},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise InvalidIdToken("expired") from exc
    except ClaimError as exc:
        raise InvalidIdToken(f"{exc.error}:{exc.claim}"[:60]) from exc
    if claims["aud"] != audience:  # one audience only: a list naming us among others is not ours
        raise InvalidIdToken("invalid_claim:aud")
    if not isinstance(claims["nonce"], str) or not hmac.compare_digest(
        claims["nonce"].encode(), nonce.encode()
    ):
        raise InvalidIdToken("nonce_mismatch")
