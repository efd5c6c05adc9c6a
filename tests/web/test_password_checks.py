"""Password checks run on their own few threads, at a lower CPU priority, off the event loop."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from config import get_settings
from web.password_checks import NICE, run_password_check


def _run(coroutine):
    """asyncio.run in a thread of its own: a browser test on this worker may have left an event
    loop running in the main thread (Playwright's sync API)."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=asyncio.run(coroutine)))
    thread.start()
    thread.join(timeout=30)
    return result["value"]


def _own_priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_check_runs_at_a_lower_priority_than_the_server():
    server = _own_priority()

    check = _run(run_password_check(_own_priority))

    assert check == min(server + NICE, 19)
    assert _own_priority() == server  # the caller's thread keeps its priority


def test_checks_run_as_many_at_once_as_the_cores_take_and_the_loop_stays_free():
    workers = max(1, (os.cpu_count() or 1) // get_settings().argon2_parallelism)
    running, most = 0, 0
    lock = threading.Lock()

    def check() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)  # stands for argon2, which holds no GIL
        with lock:
            running -= 1

    async def flood() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        await asyncio.gather(*(run_password_check(check) for _ in range(workers * 4)))
        ticking.cancel()
        return ticks

    ticks = _run(flood())

    assert most == workers
    assert ticks >= 10  # 4 rounds of 50 ms: the loop ticked on throughout
