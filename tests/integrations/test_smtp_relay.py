"""SmtpRelay, the client that hands the operator's notices to a mail relay: STARTTLS and a login
against a local aiosmtpd relay with a self-signed certificate, one connection for many mails,
one ExternalCall per mail without address or body, and failures that stop nothing else."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from integrations.http import ExternalCall
from integrations.mail import SmtpRelay, free_loopback_port

USER, PASSWORD = "relay-user", "relay-password"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Collect:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok)


@pytest.fixture
def relay_server(tmp_path) -> Iterator[tuple[Controller, Collect, ssl.SSLContext]]:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    handler = Collect()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_loopback_port(),
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    try:
        yield controller, handler, ssl.create_default_context(cafile=str(cert))
    finally:
        controller.stop()


def message(to: str, text: str = "本文です。") -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "ops@example.jp", to, "【Hikeshi】お知らせ"
    mail.set_content(text)
    return mail


def test_mails_go_over_starttls_with_a_login_and_each_is_recorded(relay_server):
    controller, handler, client_tls = relay_server
    calls: list[ExternalCall] = []
    with SmtpRelay(
        host="127.0.0.1",
        port=controller.port,
        starttls=True,
        username=USER,
        password=PASSWORD,
        ssl_context=client_tls,
        record=calls.append,
    ) as relay:
        assert relay.send(message("a@example.jp")) and relay.send(message("b@example.jp"))
    assert [rcpt for _, rcpt, _ in handler.mails] == [["a@example.jp"], ["b@example.jp"]]
    assert [(c.service, c.method, c.status, c.error) for c in calls] == [
        ("smtp", "SEND", 250, "")
    ] * 2
    assert {c.endpoint for c in calls} == {f"smtp://127.0.0.1:{controller.port}"}
    assert not any("example.jp" in repr(c) or USER in repr(c) for c in calls)


def test_a_relay_without_starttls_gets_nothing_when_starttls_is_asked():
    plain = Controller(Collect(), hostname="127.0.0.1", port=free_loopback_port())
    plain.start()
    calls: list[ExternalCall] = []
    try:
        with SmtpRelay(
            host="127.0.0.1", port=plain.port, starttls=True, record=calls.append
        ) as relay:
            sent = [relay.send(message(f"{n}@example.jp")) for n in range(3)]
    finally:
        plain.stop()
    assert sent == [False] * 3
    assert plain.handler.mails == []
    assert [c.error for c in calls] == ["SMTPNotSupportedError"] * 3


def test_a_refused_recipient_fails_alone(relay_server):
    controller, handler, client_tls = relay_server
    calls: list[ExternalCall] = []
    handler.refuse.add("gone@example.jp")
    with SmtpRelay(
        host="127.0.0.1",
        port=controller.port,
        starttls=True,
        username=USER,
        password=PASSWORD,
        ssl_context=client_tls,
        record=calls.append,
    ) as relay:
        outcomes = [relay.send(message(to)) for to in ("gone@example.jp", "here@example.jp")]
    assert outcomes == [False, True]
    assert [(c.status, c.error) for c in calls] == [(550, "SMTPRecipientsRefused"), (250, "")]
    assert [rcpt for _, rcpt, _ in handler.mails] == [["here@example.jp"]]
