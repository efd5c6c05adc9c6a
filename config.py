"""Settings from environment variables, .streamlit/secrets.toml or the generated ./data/local.toml.

Precedence: environment (HIKESHI_*), then the [hikeshi] table of .streamlit/secrets.toml, then
./data/local.toml, which `python cli.py bootstrap` writes for the local demo.
"""

from __future__ import annotations

import base64
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

ROOT = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("HIKESHI_DATA_DIR", ROOT / "data"))
LOCAL_SETTINGS = DATA_DIR / "local.toml"
SECRETS_TOML = ROOT / ".streamlit" / "secrets.toml"


class ConfigError(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    database_url: str
    master_keys: dict[str, bytes] = field(repr=False)
    active_master_key_id: str
    session_secret: bytes = field(repr=False)
    public_base_url: str = "http://localhost:8501"
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    login_max_failures: int = 5
    login_lockout_minutes: int = 15
    # failed sign-ins from one client address (any names) before it waits the lockout time
    login_address_max_failures: int = 30
    # /metrics answers only a request bearing this token (Authorization: Bearer ...); empty
    # switches the endpoint off (404)
    metrics_token: str = field(default="", repr=False)
    line_channel_id: str = ""
    line_channel_secret: str = field(default="", repr=False)
    line_authorize_url: str = "https://access.line.me/oauth2/v2.1/authorize"
    line_token_url: str = "https://api.line.me/oauth2/v2.1/token"
    line_jwks_url: str = "https://api.line.me/oauth2/v2.1/certs"
    line_friendship_url: str = "https://api.line.me/friendship/v1/status"
    # offer the official account at login: "normal", "aggressive" or "none"; empty means
    # "aggressive" when the Messaging API channel is set (services.signin.line.bot_prompt)
    line_bot_prompt: str = ""
    line_prompt_consent: bool = False  # ask LINE to show the consent screen at every login
    # The Messaging API channel (the call-out, #21): one per installation, under the same LINE
    # provider as the Login channel so that a member's user id is the same in both.
    line_messaging_token: str = field(default="", repr=False)
    line_messaging_secret: str = field(default="", repr=False)
    line_api_url: str = "https://api.line.me"
    # Keep the session cookie across browser restarts (Max-Age). Off by default: a shared
    # fire-station PC should forget the sign-in when the browser closes.
    persistent_sessions: bool = False
    registration_code_days: int = 14
    registration_max_failures: int = 5
    audit_signing_key: bytes | None = field(default=None, repr=False)
    # The raw Ed25519 public key that verifies checkpoints: verifiers never hold the seed.
    audit_verify_key: bytes | None = None
    # Every checkpoint is also written here, one file each, for shipping to write-once storage.
    audit_checkpoint_dir: Path = field(default_factory=lambda: DATA_DIR / "audit-checkpoints")
    # A chain that grew after its newest checkpoint warns once that checkpoint is this old.
    audit_checkpoint_max_age_hours: int = 48
    log_retention_days: int = 365  # white paper 18.1.3: event logs are kept at least one year
    # argon2id cost; the defaults are RFC 9106's second recommended option (argon2-cffi's
    # RFC_9106_LOW_MEMORY). Only the test suite lowers them, to keep thousands of logins cheap.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    # Dispatch mail: the domain of the receiving addresses (dispatch+<token>@domain), where the
    # SMTP receiver listens, and the largest mail it takes.
    mail_domain: str = "localhost"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    mail_max_bytes: int = 10 * 1024 * 1024
    # The incident map's geocoder (#22): the query is appended to this URL and the answer is the
    # GSI address search's JSON (a list of {geometry: {coordinates: [lon, lat]}, properties:
    # {title}}). Empty switches geocoding off (closed networks without an internal service).
    geocoder_url: str = "https://msearch.gsi.go.jp/address-search/AddressSearch?q="
    # Outgoing mail (operator notices to brigade administrators, #23): the relay it is handed
    # to, the sender address, STARTTLS (on unless switched off) and an optional login.
    mail_relay_host: str = ""
    mail_relay_port: int = 587
    mail_relay_starttls: bool = True
    mail_relay_username: str = ""
    mail_relay_password: str = field(default="", repr=False)
    mail_from: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def secure_cookies(self) -> bool:
        return self.public_base_url.startswith("https://")

    @property
    def line_configured(self) -> bool:
        return bool(self.line_channel_id and self.line_channel_secret)

    @property
    def line_messaging_configured(self) -> bool:
        return bool(self.line_messaging_token and self.line_messaging_secret)

    @property
    def mail_relay_configured(self) -> bool:
        return bool(self.mail_relay_host and self.mail_from)


def _file_values(path: Path, table: str | None) -> dict[str, str]:
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    if table is not None:
        data = data.get(table, {})
    return {str(k).upper(): str(v) for k, v in data.items()}


def _raw_values() -> dict[str, str]:
    values = _file_values(LOCAL_SETTINGS, None)
    values.update(_file_values(SECRETS_TOML, "hikeshi"))
    prefix = "HIKESHI_"
    values.update({k[len(prefix) :]: v for k, v in os.environ.items() if k.startswith(prefix)})
    return values


def parse_master_keys(spec: str) -> dict[str, bytes]:
    """Parse "kid1:base64key,kid2:base64key" into {kid: 32-byte key}."""
    keys: dict[str, bytes] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kid, _, encoded = part.partition(":")
        try:
            key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError as exc:
            raise ConfigError(f"HIKESHI_MASTER_KEYS: key {kid!r} is not base64") from exc
        if len(key) != 32 or not kid:
            raise ConfigError(f"HIKESHI_MASTER_KEYS: key {kid!r} must be 32 bytes with an id")
        keys[kid] = key
    return keys


def parse_signing_key(encoded: str) -> bytes | None:
    """Decode HIKESHI_AUDIT_SIGNING_KEY, the base64url 32-byte Ed25519 seed; "" means none."""
    if not encoded:
        return None
    try:
        seed = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError as exc:
        raise ConfigError("HIKESHI_AUDIT_SIGNING_KEY is not base64url") from exc
    if len(seed) != 32:
        raise ConfigError("HIKESHI_AUDIT_SIGNING_KEY must be a 32-byte Ed25519 seed")
    return seed


def parse_verify_key(value: str) -> bytes | None:
    """Decode HIKESHI_AUDIT_VERIFY_KEY, the Ed25519 public key: base64 (url-safe or standard) of
    its 32 raw bytes, or a PEM "PUBLIC KEY" block; "" means none."""
    value = value.strip()
    if not value:
        return None
    if value.startswith("-----BEGIN"):
        try:
            key = load_pem_public_key(value.encode())
        except ValueError as exc:
            raise ConfigError("HIKESHI_AUDIT_VERIFY_KEY is not a readable PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError("HIKESHI_AUDIT_VERIFY_KEY must be an Ed25519 public key")
        return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        raw = base64.b64decode(
            value.replace("+", "-").replace("/", "_") + "=" * (-len(value) % 4),
            altchars=b"-_",
            validate=True,
        )
    except ValueError as exc:
        raise ConfigError("HIKESHI_AUDIT_VERIFY_KEY is not base64") from exc
    if len(raw) != 32:
        raise ConfigError("HIKESHI_AUDIT_VERIFY_KEY must be a 32-byte Ed25519 public key")
    return raw


def verify_key_of(seed: bytes) -> str:
    """The HIKESHI_AUDIT_VERIFY_KEY value (base64url) that belongs to a signing seed."""
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_max_age_hours(value: str) -> int:
    try:
        hours = int(value)
    except ValueError as exc:
        raise ConfigError("HIKESHI_AUDIT_CHECKPOINT_MAX_AGE_HOURS must be whole hours") from exc
    if hours < 1:
        raise ConfigError("HIKESHI_AUDIT_CHECKPOINT_MAX_AGE_HOURS must be at least 1")
    return hours


MIN_LOG_RETENTION_DAYS = 365


def parse_retention_days(value: str) -> int:
    """HIKESHI_LOG_RETENTION_DAYS: whole days, never below one year."""
    try:
        days = int(value)
    except ValueError as exc:
        raise ConfigError("HIKESHI_LOG_RETENTION_DAYS must be a whole number of days") from exc
    if days < MIN_LOG_RETENTION_DAYS:
        raise ConfigError(
            f"HIKESHI_LOG_RETENTION_DAYS is {days}: event logs are kept at least "
            f"{MIN_LOG_RETENTION_DAYS} days (white paper 18.1.3)"
        )
    return days


def configured_database_url() -> str:
    """The database URL alone: migrations and the CLI need it before any key exists."""
    return _raw_values().get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'hikeshi.db'}"


def migration_database_url() -> str:
    """Migrations run as the schema owner; on SQLite that is the same file."""
    return _raw_values().get("MIGRATION_DATABASE_URL") or configured_database_url()


def load_settings() -> Settings:
    raw = _raw_values()
    master_keys = parse_master_keys(raw.get("MASTER_KEYS", ""))
    if not master_keys:
        raise ConfigError(
            "HIKESHI_MASTER_KEYS is not set. Run `make run` once for a local demo, "
            "or set HIKESHI_MASTER_KEYS=kid:base64-32-byte-key (see README)."
        )
    active = raw.get("ACTIVE_MASTER_KEY", next(iter(master_keys)))
    if active not in master_keys:
        raise ConfigError(f"HIKESHI_ACTIVE_MASTER_KEY {active!r} is not in HIKESHI_MASTER_KEYS")
    session_secret = raw.get("SESSION_SECRET", "")
    if len(session_secret) < 32:
        raise ConfigError("HIKESHI_SESSION_SECRET must be at least 32 characters")
    ints = {
        name: int(raw[key])
        for name, key in (
            ("session_idle_minutes", "SESSION_IDLE_MINUTES"),
            ("session_absolute_hours", "SESSION_ABSOLUTE_HOURS"),
            ("login_max_failures", "LOGIN_MAX_FAILURES"),
            ("login_lockout_minutes", "LOGIN_LOCKOUT_MINUTES"),
            ("login_address_max_failures", "LOGIN_ADDRESS_MAX_FAILURES"),
            ("registration_code_days", "REGISTRATION_CODE_DAYS"),
            ("registration_max_failures", "REGISTRATION_MAX_FAILURES"),
            ("argon2_time_cost", "ARGON2_TIME_COST"),
            ("argon2_memory_kib", "ARGON2_MEMORY_KIB"),
            ("argon2_parallelism", "ARGON2_PARALLELISM"),
            ("smtp_port", "SMTP_PORT"),
            ("mail_max_bytes", "MAIL_MAX_BYTES"),
            ("mail_relay_port", "MAIL_RELAY_PORT"),
        )
        if key in raw
    }
    strings = {
        name: raw[key]
        for name, key in (
            ("public_base_url", "PUBLIC_BASE_URL"),
            ("line_channel_id", "LINE_CHANNEL_ID"),
            ("line_channel_secret", "LINE_CHANNEL_SECRET"),
            ("line_authorize_url", "LINE_AUTHORIZE_URL"),
            ("line_token_url", "LINE_TOKEN_URL"),
            ("line_jwks_url", "LINE_JWKS_URL"),
            ("line_friendship_url", "LINE_FRIENDSHIP_URL"),
            ("line_bot_prompt", "LINE_BOT_PROMPT"),
            ("line_messaging_token", "LINE_MESSAGING_TOKEN"),
            ("line_messaging_secret", "LINE_MESSAGING_SECRET"),
            ("line_api_url", "LINE_API_URL"),
            ("mail_domain", "MAIL_DOMAIN"),
            ("smtp_host", "SMTP_HOST"),
            ("geocoder_url", "GEOCODER_URL"),
            ("metrics_token", "METRICS_TOKEN"),
            ("mail_relay_host", "MAIL_RELAY_HOST"),
            ("mail_relay_username", "MAIL_RELAY_USERNAME"),
            ("mail_relay_password", "MAIL_RELAY_PASSWORD"),
            ("mail_from", "MAIL_FROM"),
        )
        if key in raw
    }
    if "public_base_url" not in strings and raw.get("PORT", "").strip().isdigit():
        # `make run` on another port: the app (and a registration sheet's QR code) is there
        strings["public_base_url"] = f"http://localhost:{raw['PORT'].strip()}"
    if strings.get("line_bot_prompt", "") not in ("", "normal", "aggressive", "none"):
        raise ConfigError("HIKESHI_LINE_BOT_PROMPT must be empty, normal, aggressive or none")
    geocoder = strings.get("geocoder_url", "").strip()
    if geocoder and urlsplit(geocoder).scheme not in ("http", "https"):
        raise ConfigError("HIKESHI_GEOCODER_URL must be an http(s) URL, or empty to switch it off")
    flags = {
        name: raw[key].strip().lower() in ("1", "true", "yes", "on")
        for name, key in (
            ("line_prompt_consent", "LINE_PROMPT_CONSENT"),
            ("persistent_sessions", "PERSISTENT_SESSIONS"),
            ("mail_relay_starttls", "MAIL_RELAY_STARTTLS"),
        )
        if key in raw
    }
    return Settings(
        database_url=configured_database_url(),
        master_keys=master_keys,
        active_master_key_id=active,
        session_secret=session_secret.encode(),
        audit_signing_key=parse_signing_key(raw.get("AUDIT_SIGNING_KEY", "")),
        audit_verify_key=parse_verify_key(raw.get("AUDIT_VERIFY_KEY", "")),
        audit_checkpoint_dir=Path(raw["AUDIT_CHECKPOINT_DIR"])
        if raw.get("AUDIT_CHECKPOINT_DIR")
        else DATA_DIR / "audit-checkpoints",
        audit_checkpoint_max_age_hours=parse_max_age_hours(
            raw.get("AUDIT_CHECKPOINT_MAX_AGE_HOURS", "48")
        ),
        log_retention_days=parse_retention_days(
            raw.get("LOG_RETENTION_DAYS", str(MIN_LOG_RETENTION_DAYS))
        ),
        **ints,
        **strings,
        **flags,
    )


@cache
def get_settings() -> Settings:
    return load_settings()


def generate_local_settings() -> bool:
    """Write ./data/local.toml with fresh secrets unless it exists. Returns True if written."""
    if LOCAL_SETTINGS.exists():
        return False
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    seed = secrets.token_bytes(32)
    signing_key = base64.urlsafe_b64encode(seed).decode().rstrip("=")
    LOCAL_SETTINGS.write_text(
        "# Generated for the local demo by `python cli.py bootstrap`. Keep it secret.\n"
        f'master_keys = "local1:{key}"\n'
        'active_master_key = "local1"\n'
        f'session_secret = "{secrets.token_urlsafe(48)}"\n'
        f'audit_signing_key = "{signing_key}"\n'
        f'audit_verify_key = "{verify_key_of(seed)}"\n',
        encoding="utf-8",
    )
    LOCAL_SETTINGS.chmod(0o600)
    return True
