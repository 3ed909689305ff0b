"""Streams that close and reopen (phones coming and going): the API workers' memory
over a while of churn, printed only (no figure). For judging what the garbage
collector's freezer (pushbox_core/gc_freeze.py) holds back: run it against a stack
started with and without `PUSH_API_GC_FREEZE_S=0`.

    python -m bench.stream_churn [open] [churn] [seconds]   # default 3000 200 300

`open` streams are opened (the `websockets` client of bench.stream), then every
PAUSE_S `churn` of them hang up and as many others open, for `seconds`; every tenth
round prints the API workers' resident memory (MB) and how many were reopened.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

from bench import harness, stream
from bench.harness import Fleet
from scripts.stack import raise_open_files

PAUSE_S = 2.0
READY_S = 120.0


def rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


async def churn(fleet: Fleet, open_n: int, churn_n: int, seconds: float) -> None:
    streams = stream.Streams()
    api = harness.stack_processes()["api"]
    rng = random.Random(5)
    try:
        await streams.open(fleet.devices[:open_n])
        await streams.ready(fleet.devices[:open_n], READY_S)
        print(f"  {streams.still_open()} open, API memory {[rss_mb(p) for p in api]} MB")
        started = time.monotonic()
        rounds = 0
        while time.monotonic() - started < seconds:
            for device_id in rng.sample(list(streams.held), churn_n):
                ws, task = streams.held.pop(device_id)
                task.cancel()
                ws.transport.abort()
            idle = [d for d in fleet.devices if d.id not in streams.held]
            await streams.open(rng.sample(idle, churn_n))
            await asyncio.sleep(PAUSE_S)
            rounds += 1
            if rounds % 10 == 0:
                print(
                    f"  {time.monotonic() - started:4.0f} s: {rounds * churn_n} reopened,"
                    f" {streams.still_open()} open, API memory {[rss_mb(p) for p in api]} MB,"
                    f" errors {dict(streams.errors)}",
                    flush=True,
                )
    finally:
        await streams.close()


def run(open_n: int = 3_000, churn_n: int = 200, seconds: float = 300.0) -> None:
    raise_open_files()
    with harness.fleet_of("stream churn", open_n + 1_000) as f:
        harness.open_sessions(f.devices)
        print(f"stream churn: {open_n} open, {churn_n} reopened every {PAUSE_S:g} s, {seconds:g} s")
        asyncio.run(churn(f, open_n, churn_n, seconds))


if __name__ == "__main__":
    harness.check_stack()
    args = [int(a) for a in sys.argv[1:4]]
    run(*args)
