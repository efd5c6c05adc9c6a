"""A throw-away PostgreSQL cluster with pgBackRest beside it, under one temporary directory, on a
loopback port: for the restore drill (tests/operations) and the backup bench (bench/).

initdb refuses to run as root, so when this process is root (CI) every server command runs as
the `postgres` OS user, which then owns the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from integrations.pgbackrest import Layout, PgBackRest, render_archive_settings, render_config


def _newest_postgres_bin() -> Path:
    """HIKESHI_PG_BIN, or the newest Debian PostgreSQL installation's bin directory."""
    if os.environ.get("HIKESHI_PG_BIN"):
        return Path(os.environ["HIKESHI_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _newest_postgres_bin()
OS_USER = "postgres"


def missing_tools() -> list[str]:
    """What the drill needs and this machine lacks."""
    missing = [str(PG_BIN / tool) for tool in ("initdb", "pg_ctl") if not (PG_BIN / tool).exists()]
    if shutil.which("pgbackrest") is None:
        missing.append("pgbackrest")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing.append("runuser")
    return missing


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowAwayCluster:
    def __init__(self, parent: Path | None = None) -> None:
        """parent: where the cluster's directory goes; by default in memory (/dev/shm) where
        there is one, as a drill's cluster need not survive this machine."""
        if parent is None and os.access("/dev/shm", os.W_OK):
            parent = Path("/dev/shm")
        self.root = Path(tempfile.mkdtemp(prefix="hikeshi-drill-", dir=parent))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, OS_USER, OS_USER)
        self.port = free_port()
        self.data = self.root / "data"
        self.layout = Layout(
            pg_data=self.data,
            repo_path=self.root / "repo",
            pg_port=self.port,
            pg_socket=self.root,
            pg_user="postgres",
            log_path=self.root / "log",
            lock_path=self.root / "lock",
            spool_path=self.root / "spool",
        )
        self.config = self.root / "pgbackrest.conf"
        self.backrest = PgBackRest(self.config, os_user=OS_USER if self.as_root else None)

    def _run(self, *argv: str | Path) -> None:
        command = [str(a) for a in argv]
        if self.as_root:
            command = ["runuser", "-u", OS_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{command} failed: {done.stderr or done.stdout}")

    def create(self, passphrase: str) -> None:
        """initdb, pgBackRest's configuration and stanza, WAL archiving on; the server runs."""
        self._run(
            PG_BIN / "initdb",
            "-D",
            self.data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        for path in (self.layout.log_path, self.layout.lock_path, self.layout.spool_path):
            path.mkdir()
            if self.as_root:
                shutil.chown(path, OS_USER, OS_USER)
        config = render_config(self.layout, passphrase)
        self._write(self.config, config, mode=0o600)
        settings = render_archive_settings(self.config) + (
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
            f"unix_socket_directories = '{self.root}'\n"
            # A drill's cluster need not survive a crash of this machine.
            "fsync = off\nsynchronous_commit = off\nshared_buffers = 32MB\n"
        )
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(settings)
        self.start()
        self.backrest.create_stanza()

    def _write(self, path: Path, text: str, *, mode: int) -> None:
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)
        if self.as_root:
            shutil.chown(path, OS_USER, OS_USER)

    def start(self) -> None:
        self._run(
            PG_BIN / "pg_ctl",
            "-D",
            self.data,
            "-l",
            self.root / "server.log",
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def url(self, user: str = "postgres", database: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
