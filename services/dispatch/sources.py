"""Where a brigade's dispatch mail comes from (出動メール設定): each 消防本部 sender, how its
mail arrives (a secret receiving address, or the brigade's own IMAP mailbox), whom to accept it
from, and the parser profile that reads it. 災害出動 管理 only: the address is a credential."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from config import get_settings
from core.access import Need
from core.actor import Actor
from formats.dispatch_mail import DecodedMail, canonical_charset, decode_mail
from formats.dispatch_profile import EXAMPLE_PROFILES, ParsedDispatch, ParserProfile, parse_dispatch
from models.base import utcnow
from models.dispatch import MailSource, MailTransport
from models.enums import Function, Level
from services.base import Tx, scoped, transaction
from services.errors import Conflict, NotFound, ValidationError
from services.validation import clean, has_control_chars

ADMIN = Need(Function.DISPATCH, Level.ADMIN)
TOKEN_FIELD = "mail_source.address_token"
PASSWORD_FIELD = "mail_source.imap_password"
# The local part of a receiving address: "dispatch+<token>"; the token is 96 random bits.
ADDRESS_PREFIX = "dispatch+"
TOKEN_PATTERN = re.compile(r"[0-9a-f]{24}")
SENDER_PATTERN = re.compile(r"(?:[^@\s<>\"]+)?@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
MAX_SENDERS = 50
WINDOW_RANGE = (10, 24 * 60)
RETENTION_RANGE = (1, 365)
PREVIEW_MAX_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class SourceInput:
    """A source as typed on the settings page."""

    name: str
    transport: MailTransport = MailTransport.SMTP
    senders: tuple[str, ...] = ()
    dkim_required: bool = False
    charset_override: str = ""
    profile: dict[str, Any] = field(default_factory=dict)
    followup_window_minutes: int = 180
    raw_retention_days: int = 30
    imap_host: str = ""
    imap_port: int = 993
    imap_ssl: bool = True
    imap_username: str = ""
    imap_password: str = ""  # "" keeps the stored one
    imap_folder: str = "INBOX"
    active: bool = True


@dataclass(frozen=True)
class SourceView:
    id: uuid.UUID
    name: str
    transport: MailTransport
    address: str  # the receiving address (SMTP), in full
    senders: tuple[str, ...]
    dkim_required: bool
    charset_override: str
    profile: dict[str, Any]
    followup_window_minutes: int
    raw_retention_days: int
    imap_host: str
    imap_port: int
    imap_ssl: bool
    imap_username: str
    imap_password_set: bool
    imap_folder: str
    active: bool
    version: int


def address_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_of(address: str) -> str | None:
    """The token of a receiving address ("dispatch+<token>@domain"), or None."""
    local = address.strip().strip("<>").rsplit("@", 1)[0].lower()
    if not local.startswith(ADDRESS_PREFIX):
        return None
    token = local[len(ADDRESS_PREFIX) :]
    return token if TOKEN_PATTERN.fullmatch(token) else None


def receiving_address(token: str) -> str:
    return f"{ADDRESS_PREFIX}{token}@{get_settings().mail_domain}"


def list_sources(actor: Actor) -> list[SourceView]:
    with transaction(actor, ADMIN, action="mail_source.list", read_only=True) as tx:
        rows = tx.session.exec(scoped(select(MailSource), actor).order_by(MailSource.name)).all()
        return [_view(tx, row) for row in rows]


def create_source(actor: Actor, source: SourceInput) -> SourceView:
    with transaction(actor, ADMIN, action="mail_source.create") as tx:
        values = validated_settings(tx, source, None)
        row = MailSource(tenant_id=tx.tenant_id, **values)
        if source.transport == MailTransport.SMTP:
            issue_address(tx, row)
        _seal_password(tx, row, source.imap_password)
        tx.session.add(row)
        tx.session.flush()
        tx.audit(
            "mail_source.create",
            target_type="mail_source",
            target_id=row.id,
            details=_summary(row),
        )
        view = _view(tx, row)
        tx.commit()
        return view


def update_source(
    actor: Actor, source_id: uuid.UUID, source: SourceInput, *, expected_version: int
) -> SourceView:
    with transaction(actor, ADMIN, action="mail_source.update") as tx:
        row = _get(tx, source_id)
        if row.version != expected_version:
            raise Conflict()
        before = _summary(row)
        for name, value in validated_settings(tx, source, row).items():
            setattr(row, name, value)
        if row.transport == MailTransport.SMTP and row.address_hash is None:
            issue_address(tx, row)
        if row.transport == MailTransport.IMAP:
            row.address_hash = row.address_token_enc = None
        _seal_password(tx, row, source.imap_password)
        row.version += 1
        row.updated_at = utcnow()
        tx.audit(
            "mail_source.update",
            target_type="mail_source",
            target_id=row.id,
            details={"before": before, "after": _summary(row)},
        )
        view = _view(tx, row)
        tx.commit()
        return view


def rotate_address(actor: Actor, source_id: uuid.UUID) -> SourceView:
    """A new secret address; mail to the old one is refused from now on."""
    with transaction(actor, ADMIN, action="mail_source.rotate_address") as tx:
        row = _get(tx, source_id)
        if row.transport != MailTransport.SMTP:
            raise ValidationError({"受信方法": "受信アドレスを使う送信元ではありません。"})
        issue_address(tx, row)
        row.version += 1
        row.updated_at = utcnow()
        tx.audit("mail_source.rotate_address", target_type="mail_source", target_id=row.id)
        view = _view(tx, row)
        tx.commit()
        return view


@dataclass(frozen=True)
class Preview:
    mail: DecodedMail
    parsed: ParsedDispatch


def preview_profile(
    actor: Actor, sample: bytes, profile: dict[str, Any], *, charset_override: str = ""
) -> Preview:
    """What a profile finds in a sample mail (a whole .eml, or a pasted body), before it is
    saved. Writes nothing."""
    with transaction(actor, ADMIN, action="mail_source.preview", read_only=True):
        parser = _profile(profile)
        if len(sample) > PREVIEW_MAX_BYTES:
            raise ValidationError({"見本メール": "見本メールが大きすぎます（2 MB まで）。"})
        raw = sample if _looks_like_mail(sample) else _as_mail(sample)
        mail = decode_mail(raw, charset_override=_charset(charset_override) or None)
        return Preview(mail, parse_dispatch(mail, parser))


def example_profiles() -> dict[str, dict[str, Any]]:
    return {name: profile.to_dict() for name, profile in EXAMPLE_PROFILES.items()}


def source_profile(row: MailSource) -> ParserProfile:
    return ParserProfile.from_dict(json.loads(row.profile))


def source_senders(row: MailSource) -> tuple[str, ...]:
    return tuple(json.loads(row.senders))


def sender_allowed(senders: tuple[str, ...], address: str) -> bool:
    """An exact address, or any address of a listed "@domain"."""
    address = address.strip().lower()
    return any(address == s or (s.startswith("@") and address.endswith(s)) for s in senders if s)


# ---------------------------------------------------------------------------


def _get(tx: Tx, source_id: uuid.UUID) -> MailSource:
    row = tx.get(MailSource, source_id)
    if row is None:
        raise NotFound()
    return row


def issue_address(tx: Tx, row: MailSource) -> None:
    """A new secret receiving address for the source (the old one stops working)."""
    token = secrets.token_hex(12)
    row.address_hash = address_hash(token)
    row.address_token_enc = tx.cipher.encrypt(token, field=TOKEN_FIELD, row_id=row.id)


def _seal_password(tx: Tx, row: MailSource, password: str) -> None:
    if row.transport != MailTransport.IMAP:
        row.imap_password_enc = None
    elif password:
        row.imap_password_enc = tx.cipher.encrypt(password, field=PASSWORD_FIELD, row_id=row.id)


def imap_password(tx: Tx, row: MailSource) -> str:
    if not row.imap_password_enc:
        return ""
    return tx.cipher.decrypt(row.imap_password_enc, field=PASSWORD_FIELD, row_id=row.id)


def _view(tx: Tx, row: MailSource) -> SourceView:
    address = ""
    if row.address_token_enc:
        token = tx.cipher.decrypt(row.address_token_enc, field=TOKEN_FIELD, row_id=row.id)
        address = receiving_address(token)
    return SourceView(
        id=row.id,
        name=row.name,
        transport=MailTransport(row.transport),
        address=address,
        senders=source_senders(row),
        dkim_required=row.dkim_required,
        charset_override=row.charset_override,
        profile=json.loads(row.profile),
        followup_window_minutes=row.followup_window_minutes,
        raw_retention_days=row.raw_retention_days,
        imap_host=row.imap_host,
        imap_port=row.imap_port,
        imap_ssl=row.imap_ssl,
        imap_username=row.imap_username,
        imap_password_set=bool(row.imap_password_enc),
        imap_folder=row.imap_folder,
        active=row.active,
        version=row.version,
    )


def _summary(row: MailSource) -> dict[str, Any]:
    """What the audit record keeps of a source: no address token, no password."""
    return {
        "name": row.name,
        "transport": row.transport,
        "senders": source_senders(row),
        "dkim_required": row.dkim_required,
        "charset_override": row.charset_override,
        "profile": json.loads(row.profile).get("name", ""),
        "followup_window_minutes": row.followup_window_minutes,
        "raw_retention_days": row.raw_retention_days,
        "imap_host": row.imap_host,
        "active": row.active,
    }


def validated_settings(
    tx: Tx, source: SourceInput, row: MailSource | None, *, password_required: bool = True
) -> dict[str, Any]:
    """The columns a source's settings set, checked; ValidationError names every bad field. A
    restore has no password to give (backups carry none): it checks without one."""
    errors: dict[str, str] = {}
    name = clean(source.name)
    if not name or len(name) > 100 or has_control_chars(name):
        errors["名称"] = "名称を100文字以内で入力してください。"
    elif _name_taken(tx, name, row):
        errors["名称"] = f"「{name}」はすでに登録されています。"
    senders = tuple(dict.fromkeys(clean(s).lower() for s in source.senders if clean(s)))
    bad = [s for s in senders if not SENDER_PATTERN.fullmatch(s)]
    if not senders:
        errors["送信元"] = "受け付ける送信元アドレス（または @ドメイン）を1つ以上入力してください。"
    elif bad:
        errors["送信元"] = f"送信元の形式が正しくありません: {', '.join(bad[:5])}"
    elif len(senders) > MAX_SENDERS:
        errors["送信元"] = f"送信元は{MAX_SENDERS}件までです。"
    charset = clean(source.charset_override)
    if charset and _charset(charset) is None:
        errors["文字コード指定"] = f"文字コード「{charset}」は使えません。"
    try:
        profile = _profile(source.profile)
    except ValidationError as exc:
        errors.update(exc.errors)
        profile = None
    if not WINDOW_RANGE[0] <= source.followup_window_minutes <= WINDOW_RANGE[1]:
        errors["続報の照合時間"] = "続報の照合時間は10分から1440分の間で指定してください。"
    if not RETENTION_RANGE[0] <= source.raw_retention_days <= RETENTION_RANGE[1]:
        errors["原文の保存日数"] = "原文の保存日数は1日から365日の間で指定してください。"
    if source.transport == MailTransport.IMAP:
        if not clean(source.imap_host) or not clean(source.imap_username):
            errors["IMAP"] = "IMAPサーバーとユーザー名を入力してください。"
        elif password_required and not (
            source.imap_password or (row is not None and row.imap_password_enc)
        ):
            errors["IMAP"] = "IMAPのパスワードを入力してください。"
        elif not 1 <= source.imap_port <= 65535:
            errors["IMAP"] = "IMAPのポート番号が正しくありません。"
    if errors:
        raise ValidationError(errors)
    return {
        "name": name,
        "transport": MailTransport(source.transport),
        "senders": json.dumps(list(senders), ensure_ascii=False),
        "dkim_required": source.dkim_required,
        "charset_override": charset,
        "profile": json.dumps(profile.to_dict(), ensure_ascii=False),
        "followup_window_minutes": source.followup_window_minutes,
        "raw_retention_days": source.raw_retention_days,
        "imap_host": clean(source.imap_host),
        "imap_port": source.imap_port,
        "imap_ssl": source.imap_ssl,
        "imap_username": clean(source.imap_username),
        "imap_folder": clean(source.imap_folder) or "INBOX",
        "active": source.active,
    }


def _name_taken(tx: Tx, name: str, row: MailSource | None) -> bool:
    found = tx.session.exec(
        scoped(select(MailSource.id), tx.actor).where(MailSource.name == name)
    ).first()
    return found is not None and (row is None or found != row.id)


def _profile(profile: dict[str, Any]) -> ParserProfile:
    try:
        parser = ParserProfile.from_dict(profile)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError({"解析ルール": f"解析ルールを読み取れません: {exc}"}) from exc
    problems = parser.problems()
    if problems:
        raise ValidationError({"解析ルール": " / ".join(problems[:5])})
    return parser


def _charset(name: str) -> str | None:
    """A charset the decoder knows (MIME labels and Python codec names, CP50220 included)."""
    return canonical_charset(name)


def _looks_like_mail(sample: bytes) -> bool:
    head = sample[:2000].split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    return bool(re.search(rb"(?mi)^(from|subject|content-type|message-id):", head))


def _as_mail(body: bytes) -> bytes:
    """A pasted body (UTF-8 from the page) as a minimal mail, so one decoder reads both."""
    return (
        b"Subject: \r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body
    )
