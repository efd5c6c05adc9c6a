"""What keeps clicks quick (#18, bench/admin_clicks.py): the server imports what the pages
import before the first visitor, and Streamlit does not force a full garbage collection after
every run (it held the GIL for ~0.35 s while the run's end waited to be sent)."""

from __future__ import annotations

import asyncio
import sys
import threading
import tomllib
from pathlib import Path

import server


def test_the_modules_the_pages_import_are_loaded_at_start():
    names = server.page_module_names()
    assert {"pandas", "altair", "services"} <= set(names)
    # a custom component declared before the runtime serves would answer 404 (a blank map)
    assert not [n for n in names if n.split(".")[0] in ("ui", "streamlit_folium")]
    server.import_page_modules()
    for name in ("pandas", "altair", "services.members"):
        assert name in sys.modules, name


def test_the_server_warms_up_before_it_serves(monkeypatch):
    calls = []
    monkeypatch.setattr(server, "import_page_modules", lambda: calls.append("warm"))

    async def start() -> None:
        async with server.lifespan(server.app):
            calls.append("serving")

    # a thread of its own: another test in this worker may have left an event loop running
    worker = threading.Thread(target=lambda: asyncio.run(start()))
    worker.start()
    worker.join(timeout=30)
    assert calls == ["warm", "serving"]


def test_no_forced_garbage_collection_after_each_run():
    config = Path(server.__file__).parent / ".streamlit" / "config.toml"
    assert tomllib.loads(config.read_text(encoding="utf-8"))["runner"]["postScriptGC"] is False
