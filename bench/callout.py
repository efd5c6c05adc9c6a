"""The call-out on LINE against the fake Messaging API with 50 ms latency per request.

    .venv/bin/python bench/callout.py [--members 2000] [--postbacks 1000] [--rate 200]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

1. Sending: a dispatch mail calls --members linked members of one 分団. Timed from the
   incident committed (the intake's transaction, which queues the outbox rows) to the last
   multicast LINE accepted, with the sender loop of `cli.py mail-intake` running. Baseline: the
   same multicasts sent straight from the client, one after another. Target ≤ 5 s.
2. Answers: --postbacks signed webhook requests (one button press each) at --rate per second
   into the app's webhook route served by uvicorn in a process of its own (bench/webhook_server.py). Printed: the route's p95 response time
   (target ≤ 200 ms) against a route that only reads the body and answers 200 on the same
   server, and answer → visible in the tally query (target ≤ 5 s).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager

import httpx
from scratch import ROOT, Database
from sqlmodel import select

from core.actor import Actor, system_actor
from formats.line_callout import Postback
from integrations.line_messaging import MessagingClient, new_retry_key
from integrations.mail import free_loopback_port
from models import MemberLine
from models.enums import Answer, Function, Level
from services import tenants
from services.crypto import TenantCipher
from services.db import build_engine, set_engine, unit_of_work
from services.dispatch import intake, line_inbox, outbox, tally
from services.dispatch.sources import SourceInput, create_source
from services.dispatch.worker import MailIntake
from services.signin.line_sessions import SUB_FIELD
from tests.callout_factories import bulk_members
from tests.dispatch_factories import PROFILE, SENDER, body, mail
from tests.fakes.line_messaging import FakeMessaging
from tests.fakes.line_server import configured, serve

PLATFORM = Actor(kind="system", display_name="bench", label="bench")


@contextmanager
def webhook_process(db: Database) -> Iterator[str]:
    """bench/webhook_server.py on a free loopback port, in a process of its own with this
    one's settings (keys, LINE pointed at the fake) and the scratch database; its base URL."""
    port = free_loopback_port()
    env = {**os.environ, "HIKESHI_DATABASE_URL": db.app_url}
    command = [sys.executable, "-m", "uvicorn", "bench.webhook_server:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(base_url + "/bare", content=b"", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the webhook server did not start") from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=20)


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def brigade(members: int) -> tuple[uuid.UUID, str]:
    tenant = tenants.create_tenant(PLATFORM, name=f"ベンチ消防団-{uuid.uuid4().hex[:6]}")
    bulk_members(tenant, members, "第1分団")
    source = create_source(
        system_actor(tenant, label="bench"),
        SourceInput(name="ベンチ消防本部", senders=(SENDER,), profile=PROFILE),
    )
    return tenant, source.address


def sending(fake: FakeMessaging, expected: int, address: str) -> tuple[float, float, list]:
    worker = MailIntake(port=free_loopback_port(), imap=False)
    worker.sender.start()  # only the sender loop: the mail goes in through the service
    try:
        where = intake.route(address)
        outcome = intake.receive(where, mail(address, body(units="本町団1")), envelope_from=SENDER)
        committed = time.time()
        outbox.wake.set()
        while sum(len(d.to) for d in fake.deliveries) < expected:
            time.sleep(0.005)
        ours = max(d.at for d in fake.deliveries) - committed
    finally:
        worker.stop_event.set()
        outbox.wake.set()
        worker.sender.join(timeout=10)
    chunks = [d.to for d in fake.deliveries]
    messages = fake.deliveries[0].messages
    started = time.time()
    with MessagingClient(outbox.channel(), lambda _call: None) as client:
        for to in chunks:
            client.multicast(to, messages, retry_key=new_retry_key())
    return ours, time.time() - started, [outcome.incident_id]


def answers(
    fake: FakeMessaging,
    base_url: str,
    db_url: str,
    tenant: uuid.UUID,
    incident_id: uuid.UUID,
    args,
) -> tuple[list[float], list[float], list[float]]:
    board = tally.tally(system_actor(tenant), incident_id)
    members = [line.member_id for line in board.lines if line.notified][: args.postbacks]
    subs = _subs(tenant, members)
    sent_at: dict[uuid.UUID, float] = {}

    def post(path: str, member: uuid.UUID) -> float:
        data = Postback(tenant, incident_id, answer=Answer.AVAILABLE).encode()
        raw, headers = fake.webhook([fake.postback_event(subs[member], data)])
        started = time.perf_counter()
        response = client.post(base_url + path, content=raw, headers=headers)
        assert response.status_code == 200, response.text
        if path != "/bare":
            sent_at[member] = time.time()
        return time.perf_counter() - started

    def paced(path: str, batch: list[uuid.UUID]) -> list[float]:
        with ThreadPoolExecutor(8) as pool:
            futures = []
            start = time.perf_counter()
            for n, member in enumerate(batch):
                time.sleep(max(0.0, start + n / args.rate - time.perf_counter()))
                futures.append(pool.submit(post, path, member))
            return [f.result() for f in futures]

    spawn = multiprocessing.get_context("spawn")
    with (
        httpx.Client(timeout=30, limits=httpx.Limits(max_connections=16)) as client,
        ProcessPoolExecutor(1, mp_context=spawn) as watcher,
    ):
        watcher.submit(watch, db_url, tenant, incident_id, 0, 0).result()  # started, imported
        baseline = paced("/bare", members)
        watching = watcher.submit(watch, db_url, tenant, incident_id, len(members), args.sample)
        ours = paced(line_inbox.WEBHOOK_PATH, members)
        seen = watching.result(timeout=300)
    visible = [seen[m] - sent_at[m] for m in sent_at if m in seen]
    return baseline, ours, visible


_watched_engine: list = []


def watch(
    db_url: str, tenant: uuid.UUID, incident_id: uuid.UUID, expected: int, sample: float
) -> dict[uuid.UUID, float]:
    """When each answer first appears in the tally query, read every `sample` seconds by a
    leader's board in a process of its own (in the bench's process it would slow the posting
    threads that time the webhook's responses)."""
    if not _watched_engine:
        _watched_engine.append(build_engine(db_url))
        set_engine(_watched_engine[0])
    viewer = Actor(
        kind="system",
        display_name="bench",
        tenant_id=tenant,
        permissions={str(Function.DISPATCH): Level.VIEW},
    )
    seen: dict[uuid.UUID, float] = {}
    deadline = time.time() + 120
    while len(seen) < expected and time.time() < deadline:
        now = time.time()
        for line in tally.tally(viewer, incident_id).lines:
            if line.answer is not None and line.member_id not in seen:
                seen[line.member_id] = now
        time.sleep(sample)
    return seen


def _subs(tenant: uuid.UUID, members: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    with unit_of_work(tenant) as db:
        cipher = TenantCipher(db, tenant)
        rows = db.exec(select(MemberLine).where(MemberLine.tenant_id == tenant)).all()
        found = {r.member_id: cipher.decrypt(r.sub_enc, field=SUB_FIELD, row_id=r.id) for r in rows}
    return {m: found[m] for m in members}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--postbacks", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument(
        "--sample", type=float, default=0.25, help="seconds between tally reads (a board: 5)"
    )
    parser.add_argument("--database-url")
    args = parser.parse_args()
    db = Database(args.database_url)
    fake = FakeMessaging()
    fake.latency = 0.05
    try:
        with serve(fake), configured(fake.settings_env()):
            tenant, address = brigade(args.members)
            ours, bare, (incident_id,) = sending(fake, args.members, address)
            fake.reset()
            fake.latency = 0.05
            with webhook_process(db) as base_url:
                baseline, posted, visible = answers(
                    fake, base_url, db.app_url, tenant, incident_id, args
                )
    finally:
        db.close()
    print(f"\ncall-out to {args.members} members on {db.dialect}, fake LINE at 50 ms/request")
    print(
        f"  incident committed → last multicast accepted: {ours:.2f} s "
        f"(bare client, same multicasts: {bare:.2f} s; ratio {ours / bare:.1f}x); "
        f"{'within' if ours <= 5 else 'OVER'} the 5 s target"
    )
    print(f"{args.postbacks} postbacks at {args.rate:.0f}/s into the webhook route")
    print(
        f"  p95 response: {p(posted, 95) * 1000:.1f} ms (bare route {p(baseline, 95) * 1000:.1f} ms; "
        f"ratio {p(posted, 95) / p(baseline, 95):.1f}x); "
        f"{'within' if p(posted, 95) <= 0.2 else 'OVER'} the 200 ms target"
    )
    print(
        f"  answer → visible in the tally: p50 {p(visible, 50):.2f} s, p95 {p(visible, 95):.2f} s, "
        f"max {max(visible):.2f} s ({len(visible)}/{len(posted)} seen); "
        f"{'within' if max(visible) <= 5 else 'OVER'} the 5 s target"
    )


if __name__ == "__main__":
    main()
