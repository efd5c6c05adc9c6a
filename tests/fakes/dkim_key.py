"""A DKIM signing key and the DNS TXT record that publishes it, for tests: `lookup` is the
injected DNS lookup of integrations.mail.verify_dkim."""

from __future__ import annotations

import base64

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class SigningKey:
    def __init__(self, domain: str = "city.example.jp", selector: str = "sel") -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.domain, self.selector = domain, selector
        self.pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        name = f"{selector}._domainkey.{domain}.".encode()
        self.records = {name: b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)}
        self.asked: list[bytes] = []

    def lookup(self, name: bytes) -> bytes | None:
        self.asked.append(name)
        return self.records.get(name)

    def sign(self, raw: bytes) -> bytes:
        headers = [b"from", b"to", b"subject"]
        signature = dkim.sign(
            raw, self.selector.encode(), self.domain.encode(), self.pem, include_headers=headers
        )
        return signature + raw
