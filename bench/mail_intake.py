"""Dispatch mail intake latency: dispatch mails sent over SMTP on loopback, timed from the end
of DATA to the 250 reply, against a bare aiosmtpd handler that only keeps the bytes, in the same
run on the same machine.

    .venv/bin/python bench/mail_intake.py [--mails 1000] [--brigades 20]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Our receiver answers 250 only after the mail is stored sealed and handled: sender checked,
decoded, parsed, correlated, the incident and the メール受信ログ entry committed. So the time
to the 250 is the time from SMTP accept to incident committed (plus the client's own share,
which the baseline pays too). The mails are ISO-2022-JP dispatch mails in the example 【】
layout, spread over --brigades brigades (each with its own receiving address); one in five is
a follow-up (出動要請 or 鎮火) of an earlier one, the rest new incidents. Target: p95 ≤ 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from scratch import Database

from core.actor import Actor, system_actor
from formats.dispatch_profile import EXAMPLE_PROFILES, sample_dispatch_mail
from integrations.mail import SmtpReceiver, free_loopback_port, send_mail
from services import tenants
from services.dispatch.sources import SourceInput, create_source
from services.dispatch.worker import MailIntake

PLATFORM = Actor(kind="system", display_name="bench", label="bench")
SENDER = "shirei@bench-fd.example.jp"
TARGET_P95_S = 1.0


def brigade_addresses(count: int) -> list[str]:
    profile = next(iter(EXAMPLE_PROFILES.values())).to_dict()
    addresses = []
    for n in range(count):
        tenant = tenants.create_tenant(PLATFORM, name=f"ベンチ消防団{n}-{uuid.uuid4().hex[:6]}")
        source = create_source(
            system_actor(tenant, label="bench"),
            SourceInput(name="ベンチ消防本部", senders=(SENDER,), profile=profile),
        )
        addresses.append(source.address)
    return addresses


def mails(addresses: list[str], count: int) -> list[tuple[str, bytes]]:
    """New dispatches a minute apart (so each has its own 事案番号 and Message-ID), and every
    fifth a repeat of an earlier one under a new Message-ID (a follow-up of the same incident)."""
    rng = random.Random(20)
    out: list[tuple[str, bytes]] = []
    start = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
    for i in range(count):
        if i % 5 == 4:
            to, earlier = out[rng.randrange(len(out))]
            out.append((to, earlier.replace(b"Message-ID: <", f"Message-ID: <r{i}.".encode())))
            continue
        to = rng.choice(addresses)
        out.append(
            (to, sample_dispatch_mail(to=to, sender=SENDER, now=start + timedelta(minutes=i)))
        )
    return out


def timed(port: int, batch: list[tuple[str, bytes]]) -> list[float]:
    took = []
    for to, raw in batch:
        started = time.perf_counter()
        send_mail(raw, host="127.0.0.1", port=port, mail_from=SENDER, rcpt_tos=[to])
        took.append(time.perf_counter() - started)
    return took


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--brigades", type=int, default=20)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    db = Database(args.database_url)
    try:
        addresses = brigade_addresses(args.brigades)
        batch = mails(addresses, args.mails)
        kept: list[bytes] = []
        with SmtpReceiver(
            lambda _envelope, raw: kept.append(raw),
            port=free_loopback_port(),
            max_bytes=10 * 1024 * 1024,
        ) as bare:
            baseline = timed(bare.port, batch)
        intake = MailIntake(port=free_loopback_port(), imap=False)
        intake.start()
        try:
            ours = timed(intake.receiver.port, batch)
        finally:
            intake.stop()
    finally:
        db.close()
    print(f"\n{args.mails} dispatch mails to {args.brigades} brigades on {db.dialect}")
    print(f"{'':36}{'p50':>10}{'p95':>10}{'max':>10}")
    for label, values in (("bare aiosmtpd (keeps the bytes)", baseline), ("Hikeshi intake", ours)):
        print(
            f"{label:36}{p(values, 50) * 1000:8.1f}ms{p(values, 95) * 1000:8.1f}ms"
            f"{max(values) * 1000:8.1f}ms"
        )
    ratio = p(ours, 95) / p(baseline, 95)
    verdict = "within" if p(ours, 95) <= TARGET_P95_S else "OVER"
    print(
        f"p95 ratio intake / bare: {ratio:.1f}x; p95 {p(ours, 95):.3f} s {verdict} the 1 s target"
    )


if __name__ == "__main__":
    main()
