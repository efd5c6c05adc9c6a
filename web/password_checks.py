"""Password checks (argon2) on a few threads of their own, at low CPU priority (#16).

One argon2id verification at the production cost keeps `argon2_parallelism` cores busy for
about a tenth of a second. Run in the shared thread pool, a flood of wrong passwords took every
token of it (Streamlit sets 28), so /healthz and Streamlit's static files queued behind the
flood, and the many verifications at once left the members' page runs no CPU
(bench/login_flood.py). Here at most as many checks run at once as the cores can take, the rest
wait on the event loop (costing nothing), and the threads run at a lower priority (nice), so the
kernel gives the members' page runs the CPU first while checks use whatever is left.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from config import get_settings

NICE = 10  # a normal thread gets about ten times the CPU of a password check when both want it

P = ParamSpec("P")
T = TypeVar("T")


def _lower_priority() -> None:
    # On Linux a thread id is a valid PRIO_PROCESS target and changes only that thread; the
    # threads argon2 starts for its lanes inherit it.
    if hasattr(os, "setpriority"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


@functools.cache
def _executor() -> ThreadPoolExecutor:
    cores = os.cpu_count() or 1
    workers = max(1, cores // max(1, get_settings().argon2_parallelism))
    return ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="password-check", initializer=_lower_priority
    )


async def run_password_check(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`func(*args, **kwargs)` on a password-check thread, awaited without blocking the loop."""
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)
