"""pgBackRest: the provider's continuous, encrypted PostgreSQL backups (white paper 12.3.1).

WAL archiving sends every committed change to the repository within minutes (archive_timeout);
a full backup runs weekly and a differential daily (scheduled_type); the repository is
encrypted (aes-256-cbc, passphrase from a secret file) and keeps what a restore to any point of
the last 35 days needs, expiring the rest after each backup. The configuration is the template
in deploy/pgbackrest, filled in by render_config. pgBackRest runs as the PostgreSQL OS user:
when this process is root, every command goes through `runuser -u <os user>`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from core.timefmt import today_jst

TEMPLATES = Path(__file__).resolve().parent.parent / "deploy" / "pgbackrest"
STANZA = "hikeshi"
RETENTION_DAYS = 35
FULL_BACKUP_WEEKDAY = 6  # Sunday: the weekly full backup; a differential on the other days
BACKUP_TYPES = ("full", "diff")
MIN_PASSPHRASE_LENGTH = 32


class BackupToolError(RuntimeError):
    """pgBackRest is missing, refused the configuration, or a command failed."""


@dataclass(frozen=True)
class Layout:
    """Where the cluster, the repository and pgBackRest's own files live."""

    pg_data: Path
    repo_path: Path
    pg_port: int = 5432
    pg_socket: Path = Path("/var/run/postgresql")
    pg_user: str = "postgres"
    log_path: Path = Path("/var/log/pgbackrest")
    lock_path: Path = Path("/tmp/pgbackrest")
    spool_path: Path = Path("/var/spool/pgbackrest")
    stanza: str = STANZA


def read_passphrase(path: Path) -> str:
    """The repository passphrase from its secret file: one line, long enough to resist guessing
    (generate one with `openssl rand -base64 48`)."""
    passphrase = path.read_text(encoding="utf-8").strip()
    if len(passphrase) < MIN_PASSPHRASE_LENGTH or any(c.isspace() for c in passphrase):
        raise BackupToolError(
            f"{path}: the passphrase must be one line of at least {MIN_PASSPHRASE_LENGTH} "
            "characters without spaces"
        )
    return passphrase


def render_config(layout: Layout, passphrase: str, *, retention_days: int = RETENTION_DAYS) -> str:
    if retention_days < RETENTION_DAYS:
        raise BackupToolError(f"backups are kept at least {RETENTION_DAYS} days (12.3.1)")
    template = (TEMPLATES / "pgbackrest.conf").read_text(encoding="utf-8")
    return template.format(
        repo_path=layout.repo_path,
        cipher_pass=passphrase,
        retention_days=retention_days,
        log_path=layout.log_path,
        lock_path=layout.lock_path,
        spool_path=layout.spool_path,
        stanza=layout.stanza,
        pg_data=layout.pg_data,
        pg_port=layout.pg_port,
        pg_socket=layout.pg_socket,
        pg_user=layout.pg_user,
    )


def archive_command(config: Path, stanza: str = STANZA) -> str:
    return f"pgbackrest --config={shlex.quote(str(config))} --stanza={stanza} archive-push %p"


def render_archive_settings(config: Path, stanza: str = STANZA) -> str:
    """The postgresql.conf lines that turn WAL archiving on for this configuration."""
    template = (TEMPLATES / "postgresql.conf").read_text(encoding="utf-8")
    return template.format(archive_command=archive_command(config, stanza).replace("'", "''"))


def scheduled_type(day: date) -> str:
    """The backup the daily job takes on day: full on Sundays, differential otherwise."""
    return "full" if day.weekday() == FULL_BACKUP_WEEKDAY else "diff"


class PgBackRest:
    """The pgbackrest commands Hikeshi's operators need, for one configuration file."""

    def __init__(
        self,
        config: Path,
        *,
        stanza: str = STANZA,
        os_user: str | None = None,
        binary: str = "pgbackrest",
    ) -> None:
        self.config = config
        self.stanza = stanza
        self.binary = binary
        self.os_user = os_user if os_user is not None else _default_os_user()

    def create_stanza(self) -> None:
        self._run("stanza-create")

    def check(self) -> None:
        """Checks the configuration and that WAL reaches the repository (forces a WAL switch
        and waits for the segment to be archived)."""
        self._run("check")

    def backup(self, kind: str) -> None:
        if kind not in BACKUP_TYPES:
            raise BackupToolError(f"backup type must be one of {', '.join(BACKUP_TYPES)}")
        # pgBackRest expires what the retention no longer needs at the end of every backup.
        self._run("backup", f"--type={kind}")

    def expire(self) -> None:
        self._run("expire")

    def info(self) -> list[dict]:
        return json.loads(self._run("info", "--output=json"))

    def backups(self) -> list[dict]:
        """This stanza's backups, oldest first (label, type, timestamp start/stop, sizes)."""
        stanzas = [s for s in self.info() if s.get("name") == self.stanza]
        return stanzas[0].get("backup", []) if stanzas else []

    def restore(
        self,
        *,
        target_time: datetime | None = None,
        backup_set: str | None = None,
        delta: bool = True,
    ) -> None:
        """Restore into pg1-path (the cluster must be stopped): to the end of the archived WAL,
        or to target_time (timezone-aware), after which the cluster is promoted and opens for
        writes on a new timeline. pgBackRest picks the newest backup that ended before the
        target (its stop time counts in whole seconds); backup_set names one instead."""
        options = ["--delta"] if delta else []
        if backup_set is not None:
            options.append(f"--set={backup_set}")
        if target_time is not None:
            if target_time.tzinfo is None:
                raise BackupToolError("target_time needs a time zone")
            options += [
                "--type=time",
                f"--target={target_time.isoformat(sep=' ')}",
                "--target-action=promote",
            ]
        self._run("restore", *options)

    def _run(self, command: str, *options: str) -> str:
        argv = [self.binary, f"--config={self.config}", f"--stanza={self.stanza}", *options]
        argv.append(command)
        if self.os_user:
            argv = ["runuser", "-u", self.os_user, "--", *argv]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
        except FileNotFoundError as exc:
            raise BackupToolError(f"{argv[0]} is not installed: {exc}") from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise BackupToolError(
                f"pgbackrest {command} failed ({done.returncode}): " + " | ".join(detail)
            )
        return done.stdout


def _default_os_user() -> str | None:
    """pgBackRest must run as the owner of the cluster's files, not as root."""
    return "postgres" if os.geteuid() == 0 else None


# ---------------------------------------------------------------------------
# Command line (wired into cli.py as `provider-backup`)

DEFAULT_CONFIG = Path(
    os.environ.get("HIKESHI_PGBACKREST_CONFIG", "/etc/pgbackrest/pgbackrest.conf")
)


def configure(
    layout: Layout, passphrase_file: Path, output: Path, *, os_user: str | None = None
) -> str:
    """Write the configuration (0600, owned by the PostgreSQL OS user when run as root) and
    return the postgresql.conf lines that turn WAL archiving on."""
    text = render_config(layout, read_passphrase(passphrase_file))
    output.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(output, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    output.chmod(0o600)
    owner = os_user if os_user is not None else _default_os_user()
    if owner:
        shutil.chown(output, owner, owner)
    return render_archive_settings(output, layout.stanza)


def main(args) -> int:
    """`cli.py provider-backup configure|stanza-create|check|backup|expire|info|restore`."""
    tool = PgBackRest(args.config)
    try:
        match args.action:
            case "configure":
                layout = Layout(pg_data=args.pg_data, repo_path=args.repo, pg_port=args.pg_port)
                print(configure(layout, args.passphrase_file, args.config))
            case "stanza-create":
                tool.create_stanza()
            case "check":
                tool.check()
            case "backup":
                kind = scheduled_type(today_jst()) if args.type == "auto" else args.type
                tool.backup(kind)
                print(f"{kind} backup done")
            case "expire":
                tool.expire()
            case "info":
                for backup in tool.backups():
                    stamp = backup["timestamp"]
                    print(
                        f"{backup['label']}  {backup['type']:<4}  "
                        f"{datetime.fromtimestamp(stamp['start']):%Y-%m-%d %H:%M:%S} - "
                        f"{datetime.fromtimestamp(stamp['stop']):%H:%M:%S}  "
                        f"{backup['info']['repository']['delta']} bytes"
                    )
            case "restore":
                target = datetime.fromisoformat(args.target_time) if args.target_time else None
                tool.restore(target_time=target, backup_set=args.set)
    except (BackupToolError, OSError, ValueError) as exc:
        print(f"失敗 / failed: {exc}", file=sys.stderr)
        return 1
    return 0


def add_arguments(parser) -> None:
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="pgbackrest.conf (rendered)"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    setup = actions.add_parser("configure", help="write pgbackrest.conf from the template")
    setup.add_argument("--pg-data", type=Path, required=True)
    setup.add_argument("--repo", type=Path, required=True, help="repository directory")
    setup.add_argument("--pg-port", type=int, default=5432)
    setup.add_argument("--passphrase-file", type=Path, required=True)
    actions.add_parser("stanza-create", help="create the repository's stanza once")
    actions.add_parser("check", help="check the configuration and WAL archiving")
    backup = actions.add_parser("backup", help="full weekly, differential daily; then expire")
    backup.add_argument("--type", choices=(*BACKUP_TYPES, "auto"), default="auto")
    actions.add_parser("expire", help="delete what the 35-day retention no longer needs")
    actions.add_parser("info", help="list the backups")
    restore = actions.add_parser("restore", help="restore into the stopped cluster")
    restore.add_argument("--target-time", help="ISO time with zone, e.g. 2026-12-07T10:00+09:00")
    restore.add_argument("--set", help="backup label to restore from")
