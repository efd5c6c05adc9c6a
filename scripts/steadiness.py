"""Run a part of the suite several times in a row while a CPU burner occupies one core.

A test that passes only on an idle machine is a defect: CI shares its two cores with the app
server, PostgreSQL and Chromium. Usage:

    .venv/bin/python scripts/steadiness.py --runs 10 tests/e2e
    HIKESHI_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python scripts/steadiness.py --runs 3 tests/e2e

The burner is a bounded busy loop in another process (it stops after --burn-seconds even if this
script is killed). Prints one line per run and exits non-zero if any run failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Stops at its deadline or as soon as this script is gone, whichever comes first.
BURNER = (
    "import os, time\n"
    "parent, end = os.getppid(), time.monotonic() + {seconds}\n"
    "while time.monotonic() < end and os.getppid() == parent:\n"
    "    pass\n"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--burn-seconds", type=int, default=3600, help="upper bound of the burner")
    parser.add_argument("paths", nargs="*", default=["tests/e2e"])
    args = parser.parse_args()
    burner = subprocess.Popen([sys.executable, "-c", BURNER.format(seconds=args.burn_seconds)])
    env = os.environ | {"HIKESHI_REQUIRE_BROWSER": "1"}
    failures = 0
    try:
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            command = [sys.executable, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider"]
            result = subprocess.run(
                [*command, *args.paths],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
            took = time.monotonic() - started
            print(f"run {run:2d}/{args.runs}: exit {result.returncode} in {took:5.1f} s  {summary}")
            if result.returncode != 0:
                failures += 1
                print(result.stdout[-4000:])
            sys.stdout.flush()
    finally:
        burner.kill()
        burner.wait()
    print(f"{args.runs - failures} of {args.runs} runs passed with one core busy")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
