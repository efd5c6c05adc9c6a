"""Login flood: while clients flood POST /auth/login with wrong passwords, a signed-in member's
page run and GET /healthz should stay within 2× of their idle p95 (#16). Prints the figures.

    .venv/bin/python bench/login_flood.py [--seconds 8] [--clients 32] [--warmup 1]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

The server is the real one, started as the e2e tests start it (`streamlit run server.py` on a
free loopback port, tests/e2e/conftest.py), with the production argon2 cost and login limits,
against a scratch database seeded with the demo brigade (services.demo.seed_demo) plus a few
more local accounts: a temporary SQLite file by default; with --database-url a fresh PostgreSQL
database on that server, migrated as the owner, the app connecting as the application role
under row-level security, dropped at the end.

A "page run" is what a signed-in member's browser asks for on every click: one Streamlit run of
app.py over the WebSocket (/_stcore/stream) carrying the session cookie, timed from the
rerun request to the server's script-finished message. It resolves the session through
sessions.resolve, builds the navigation and runs the landing page (the dashboard of the demo
団長), in the server's own script thread, so it competes for exactly what the flood uses (the
event loop, the threads, the database, the two cores). An in-process AppTest would not share
the server's event loop or threads, and no plain HTTP route resolves a member's session.

Phases, each --seconds long, the first --warmup seconds not counted: idle (the two probes
alone), then two floods of --clients concurrent clients posting wrong passwords, from our own
origin, for a mixture of real and unknown login names:
- one address: every request from 127.0.0.1; after HIKESHI_LOGIN_ADDRESS_MAX_FAILURES failures
  (30) the address is refused before any password is checked;
- many addresses: each request with a new X-Forwarded-For address (uvicorn trusts the header
  from loopback, as from a reverse proxy on the host), so the address throttle never engages
  and every request costs one argon2 verification: a distributed flood, or the limit raised.
The probes run back to back in the bench process (GET /healthz every 50 ms; one page run after
another), the flood in a separate process so that its client work does not delay the probes'
clocks. The machine is shared: run it twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
# the production profile: no test-suite overrides of the argon2 cost or the login limits
for _name in [n for n in os.environ if n.startswith(("HIKESHI_ARGON2_", "HIKESHI_LOGIN_"))]:
    del os.environ[_name]

import httpx  # noqa: E402
from scratch import DATA, Database  # noqa: E402 - sets up the environment
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402
from websockets.sync.client import ClientConnection, connect  # noqa: E402

from core.actor import system_actor  # noqa: E402
from services import demo, demo_data, members, tenants  # noqa: E402
from services.signin import local  # noqa: E402
from tests.e2e.conftest import _free_port, _wait_until_healthy  # noqa: E402

EXTRA_ACCOUNTS = 2
PASSWORD = "bench-password-" + secrets.token_hex(8)
HEALTHZ_PAUSE = 0.05
PAGE_TIMEOUT = 120.0
LIMIT = 2.0
SUCCESS = ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ERROR_LINE = re.compile(r"^[\w.]*(?:Error|Exception): .*$", re.MULTILINE)


def seed() -> tuple[str, list[str]]:
    """The demo brigade; returns the 団長's password and every local account's login name."""
    result = demo.seed_demo()
    tenant = tenants.get_tenant_by_name(demo.PLATFORM, demo_data.DEMO_BRIGADE["name"])
    seeder = system_actor(tenant.id, label="bench")
    active = [m for m in members.list_members(seeder) if m.status == "active"]
    names = [demo.ADMIN_LOGIN]
    for member in active[:EXTRA_ACCOUNTS]:
        names.append(f"bench-{uuid.uuid4().hex[:8]}")
        local.create_account(
            demo.PLATFORM,
            login_name=names[-1],
            password=PASSWORD,
            tenant_id=tenant.id,
            member_id=member.id,
        )
    return result.admin_password or "", names


# -- the server ----------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, db: Database) -> Server:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(DATA) / "server.log"
        env = os.environ | {
            "HIKESHI_DATABASE_URL": db.app_url,
            "HIKESHI_MIGRATION_DATABASE_URL": db.owner_url,
            "HIKESHI_PUBLIC_BASE_URL": url,
        }
        command = [
            str(ROOT / ".venv" / "bin" / "streamlit"),
            "run",
            "server.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        return cls(url, process, log)

    def wait_until_healthy(self) -> None:
        _wait_until_healthy(self.process, self.url, self.log)

    def errors(self) -> Counter[str]:
        """The exceptions the server logged (Streamlit shows the page only a redacted note)."""
        text = ANSI.sub("", self.log.read_text(errors="replace"))
        return Counter(match.group(0)[:120] for match in ERROR_LINE.finditer(text))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def sign_in(self, login_name: str, password: str) -> str:
        response = httpx.post(
            f"{self.url}/auth/login",
            data={"login_name": login_name, "password": password},
            headers={"origin": self.url},
        )
        token = response.cookies.get("hikeshi_session")
        if response.status_code != 303 or not token:
            raise SystemExit(f"the bench could not sign in: {response.status_code}")
        return token


# -- the probes ----------------------------------------------------------------------------------


class PageRunner:
    """One browser tab of a signed-in member: a Streamlit session over the WebSocket."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    @staticmethod
    def connect(base_url: str, token: str) -> ClientConnection:
        return connect(
            base_url.replace("http://", "ws://") + "/_stcore/stream",
            origin=base_url,
            additional_headers={"Cookie": f"hikeshi_session={token}"},
            max_size=None,
            open_timeout=30,
            ping_interval=None,  # a flooded server may answer pings late; the runs are timed
        )

    def run(self) -> bytes:
        """One run of the page; returns what the server sent, raw (for the sanity check)."""
        message = BackMsg()
        message.rerun_script.query_string = ""
        self.socket.send(message.SerializeToString())
        received = []
        while True:
            raw = self.socket.recv(timeout=PAGE_TIMEOUT)
            assert isinstance(raw, bytes)
            received.append(raw)
            forward = ForwardMsg()
            forward.ParseFromString(raw)
            kind = forward.WhichOneof("type")
            if kind == "delta" and forward.delta.new_element.HasField("exception"):
                raise PageFailed(forward.delta.new_element.exception.message)
            if kind == "script_finished":
                if forward.script_finished != SUCCESS:
                    raise PageFailed(f"status {forward.script_finished}")
                return b"".join(received)


class PageFailed(Exception):
    pass


@dataclass
class Samples:
    healthz: list[float] = field(default_factory=list)
    page: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def probe(base_url: str, page: PageRunner, seconds: float, warmup: float) -> Samples:
    """Both probes for `seconds`. A sample counts when it ended after `warmup`: a request that
    the flood held up from the start counts with its whole wait, and one still running at the
    end is waited for."""
    samples = Samples()
    start = time.monotonic()
    counted_from, end = start + warmup, start + seconds

    def keep(into: list[float], began: float) -> None:
        if (ended := time.monotonic()) >= counted_from:
            into.append(ended - began)

    def healthz() -> None:
        with httpx.Client(timeout=PAGE_TIMEOUT) as client:
            while (began := time.monotonic()) < end:
                try:
                    status = client.get(f"{base_url}/healthz").status_code
                except httpx.TransportError as error:
                    status = type(error).__name__
                if status == 200:
                    keep(samples.healthz, began)
                else:
                    samples.errors[f"healthz {status}"] += 1
                time.sleep(HEALTHZ_PAUSE)

    def pages() -> None:
        while (began := time.monotonic()) < end:
            try:
                page.run()
            except PageFailed as error:
                samples.errors[f"page {error}"[:60]] += 1
            else:
                keep(samples.page, began)

    threads = [threading.Thread(target=healthz), threading.Thread(target=pages)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


# -- the flood -----------------------------------------------------------------------------------


def flood(base_url: str, names: list[str], clients: int, seconds: float, spread: bool, out) -> None:
    """Runs in its own process: `clients` concurrent loops of wrong-password posts."""
    answers: Counter[str] = Counter()

    async def one_client(client: httpx.AsyncClient, end: float) -> None:
        rng = random.Random()
        while time.monotonic() < end:
            name = rng.choice(names) if rng.random() < 0.5 else f"nobody-{rng.getrandbits(32):x}"
            headers = {"origin": base_url}
            if spread:
                headers["x-forwarded-for"] = f"10.{rng.randrange(256)}.{rng.randrange(256)}.1"
            try:
                response = await client.post(
                    "/auth/login",
                    data={"login_name": name, "password": "wrong-" + secrets.token_hex(6)},
                    headers=headers,
                )
            except httpx.TransportError as error:
                answers[type(error).__name__] += 1
                continue
            query = parse_qs(urlsplit(response.headers.get("location", "")).query)
            answers[query.get("login_error", [str(response.status_code)])[0]] += 1

    async def run() -> None:
        end = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
            # at the end the clients hang up; what the server has queued it still works off
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await asyncio.gather(*(one_client(client, end) for _ in range(clients)))

    asyncio.run(run())
    out.put(dict(answers))


# -- report --------------------------------------------------------------------------------------


def p50_p95(values: list[float]) -> tuple[float, float]:
    if len(values) == 1:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[18]


def report(results: dict[str, tuple[Samples, dict[str, int], float]]) -> None:
    idle = results["idle"][0]
    base = {"healthz": p50_p95(idle.healthz)[1], "page": p50_p95(idle.page)[1]}
    header = (
        f"{'phase':<16} | {'healthz ms p50':>14} {'p95':>7} {'×idle':>6} {'n':>4} | "
        f"{'page run ms p50':>15} {'p95':>7} {'×idle':>6} {'n':>4} | {'logins/s':>8}  answers"
    )
    print(header)
    print("-" * len(header))
    verdicts, failures = [], []
    for phase, (samples, answers, seconds) in results.items():
        row = f"{phase:<16} |"
        for name, values, width in (
            ("healthz", samples.healthz, 14),
            ("page", samples.page, 15),
        ):
            if values:
                p50, p95 = p50_p95(values)
                ratio = p95 / base[name]
                row += f" {p50 * 1000:>{width}.1f} {p95 * 1000:>7.1f} {ratio:>5.2f}x"
            else:  # not one answer in the phase
                ratio = float("inf")
                row += f" {'-':>{width}} {'-':>7} {'-':>6}"
            row += f" {len(values):>4} |"
            if phase != "idle":
                verdicts.append(f"{phase} {name} {'ok' if ratio <= LIMIT else 'OVER'}")
        per_second = sum(answers.values()) / seconds if seconds else 0
        row += f" {per_second:>8.1f}  " + (
            ", ".join(f"{k} {v}" for k, v in sorted(answers.items())) or "-"
        )
        print(row, flush=True)
        failures += [f"{phase}: {what} ×{n}" for what, n in samples.errors.items()]
    print(f"\np95 within {LIMIT:g}× of idle: " + "; ".join(verdicts))
    print("probe failures: " + ("; ".join(failures) or "none"))


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8, help="length of each phase")
    parser.add_argument("--warmup", type=float, default=1, help="not counted, at each start")
    parser.add_argument("--clients", type=int, default=32, help="concurrent flooding clients")
    parser.add_argument("--database-url", help="a PostgreSQL server (default: SQLite)")
    args = parser.parse_args()

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, DATA, ignore_errors=True)
        db = Database(args.database_url)
        stack.callback(db.close)
        server = Server.start(db)  # starts up on one core while the brigade is seeded on the other
        stack.callback(server.stop)
        admin_password, names = seed()
        server.wait_until_healthy()
        token = server.sign_in(demo.ADMIN_LOGIN, admin_password)
        page = PageRunner(stack.enter_context(PageRunner.connect(server.url, token)))
        first = page.run()  # also warms the server's imports and caches
        if demo_data.DEMO_BRIGADE["name"].encode() not in first:
            raise SystemExit("the page run did not show the signed-in member's brigade")
        print(
            f"{'SQLite' if db.name == '' else 'PostgreSQL ' + db.name}, server {server.url}, "
            f"{args.clients} flooding clients, {len(names)} real login names; "
            f"set-up {time.monotonic() - started:.1f} s",
            flush=True,
        )
        results: dict[str, tuple[Samples, dict[str, int], float]] = {
            "idle": (probe(server.url, page, args.seconds, args.warmup), {}, 0.0)
        }
        fork = multiprocessing.get_context("fork")
        for phase, spread in (("flood 1 address", False), ("flood many addr.", True)):
            answers = fork.Queue()
            flooder = fork.Process(
                target=flood,
                args=(server.url, names, args.clients, args.seconds, spread, answers),
            )
            flooder.start()
            samples = probe(server.url, page, args.seconds, args.warmup)
            counts = answers.get(timeout=PAGE_TIMEOUT)
            flooder.join()
            results[phase] = (samples, counts, args.seconds)
        report(results)
        if logged := server.errors():
            print("server errors: " + "; ".join(f"{e} ×{n}" for e, n in logged.items()))
    print(f"total {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
