"""A scratch database for the bench scripts: a temporary SQLite file, or a fresh PostgreSQL
database on a given server (migrated as the owner, the services running as the application role
under row-level security, as the app does), dropped at the end. Importing this module points
the settings at a temporary data directory with throw-away keys."""

from __future__ import annotations

import base64
import os
import secrets
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = tempfile.mkdtemp(prefix="hikeshi-bench-")
os.environ["HIKESHI_DATA_DIR"] = DATA
os.environ.setdefault(
    "HIKESHI_MASTER_KEYS", "bench:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
)
os.environ.setdefault("HIKESHI_SESSION_SECRET", secrets.token_urlsafe(48))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from services.db import build_engine, normalise_url, set_engine  # noqa: E402

APP_ROLE = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")


def migrate(url: str) -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")


class Database:
    """A scratch database: the application's engine (set for the services) and the owner's;
    `app_url` and `owner_url` for a server process started on it."""

    def __init__(self, server_url: str | None) -> None:
        self.server_url, self.name = server_url, ""
        if server_url is None:
            self.owner_url = self.app_url = f"sqlite:///{Path(DATA) / 'bench.db'}"
        else:
            server = make_url(normalise_url(server_url))
            self.name = f"hikeshi_bench_{uuid.uuid4().hex[:8]}"
            with self._admin() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            owner = server.set(database=self.name)
            self.owner_url = owner.render_as_string(hide_password=False)
            app = owner.set(username=APP_ROLE, password=None)
            self.app_url = app.render_as_string(hide_password=False)
        migrate(self.owner_url)
        self.owner = build_engine(self.owner_url)
        self.app = self.owner if self.app_url == self.owner_url else build_engine(self.app_url)
        set_engine(self.app)

    @property
    def dialect(self) -> str:
        return self.app.dialect.name

    def _admin(self):
        server = make_url(normalise_url(self.server_url or ""))
        admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        return admin.connect()

    def close(self) -> None:
        self.app.dispose()
        self.owner.dispose()
        if self.name:
            with self._admin() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
