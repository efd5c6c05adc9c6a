"""Settings end up in tracebacks and debug logs: their repr names no secret."""

from __future__ import annotations

import base64
import dataclasses

from config import get_settings


def test_the_settings_repr_shows_no_key_secret_or_token():
    settings = dataclasses.replace(
        get_settings(),
        line_channel_secret="channel-secret-value",
        line_messaging_token="messaging-token-value",
        line_messaging_secret="messaging-secret-value",
    )
    shown = repr(settings)
    secrets = [
        "channel-secret-value",
        "messaging-token-value",
        "messaging-secret-value",
        settings.session_secret.decode(errors="replace"),
        *(base64.urlsafe_b64encode(k).decode().rstrip("=") for k in settings.master_keys.values()),
        *(repr(k) for k in settings.master_keys.values()),
    ]
    assert not [s for s in secrets if s and s in shown]
    assert "database_url" in shown  # the rest is still shown
