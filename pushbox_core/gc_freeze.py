"""Short garbage-collector pauses for a process that holds thousands of long-lived
connections (an API worker's open streams and waiting syncs).

CPython's full collection walks every object the collector tracks, and it runs each
time the long-lived objects have grown by a quarter. Measured (gc.callbacks around each
collection, `python -m bench.stream streaming`, 2026-11-30 12:02-12:05Z, two API
workers): pauses grew with the open streams, to 0.3-0.9 s over the 4,000-8,000 steps
and 1.1-2.2 s over the 8,000 and 10,000 steps; every stream and request of the worker
waits that long, which was the whole p99 of the sends at 8,000 and 10,000 streams (936
and 846 ms).

So every FREEZE_EVERY_S the objects that exist then are frozen (gc.freeze: moved out of
the collector's sight; reference counting still frees them), and only what was made
since is walked. The young generations are collected first (a few milliseconds).
Cyclic garbage that was alive at a freeze (a stream's objects after it closed) waits
for a thaw: everything is unfrozen and collected once, one long pause, when the frozen
objects have grown fourfold since the last thaw (streams opened, or closed ones not yet
collected) or THAW_EVERY_S has passed, whichever comes first. Each process starts its
while at a random point of it, so that the workers of a machine do not all pause at
once.

Freezing every 10 s (the same bench, 12:12-12:18Z): the longest pause 0.33 s, p99 from
send to frame 144 ms at 8,000 streams and 48 ms at 10,000 (every 60 s, 12:07Z: pauses
up to 0.6 s, p99 59 and 667 ms). `PUSH_API_GC_FREEZE_S` sets the while
(gunicorn_conf.py; 0 turns it off).
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time

log = logging.getLogger(__name__)

FREEZE_EVERY_S = 10.0
THAW_EVERY_S = 1800.0
# a thaw when the frozen objects are this many times the last thaw's: a closed stream
# leaves ~1 KB of frozen garbage (bench.stream_churn), so this is a net for extreme churn;
# at 2, streams opening alone thawed at every doubling (a 1-2 s pause at 4,000-5,000
# streams a worker, inside `make bench`, 13:2xZ)
THAW_GROWTH = 4.0
THAW_FLOOR = 200_000  # ...and at least this many (a young process grows fast from little)


class Freezer:
    def __init__(self, freeze_every_s: float = FREEZE_EVERY_S, thaw_every_s: float = THAW_EVERY_S):
        self.freeze_every_s = freeze_every_s
        self.thaw_every_s = thaw_every_s
        self._thawed_at = time.monotonic() - random.uniform(0, thaw_every_s)
        self._kept = 0  # objects frozen right after the last thaw

    def tick(self, now: float | None = None) -> None:
        """Freeze what lives now; first thaw and collect everything, when it is due."""
        now = time.monotonic() if now is None else now
        frozen = gc.get_freeze_count()
        grown = frozen >= max(THAW_FLOOR, THAW_GROWTH * self._kept)
        if now - self._thawed_at >= self.thaw_every_s or grown:
            gc.unfreeze()
            started = time.perf_counter()
            freed = gc.collect()
            log.warning(
                "garbage collector: thawed %d objects, freed %d, in %.0f ms",
                frozen,
                freed,
                (time.perf_counter() - started) * 1e3,
            )
            self._thawed_at = now
            gc.freeze()
            self._kept = gc.get_freeze_count()
            return
        gc.collect(1)  # the young garbage goes now, not frozen with the rest
        gc.freeze()

    def start(self) -> None:
        """Tick in the background (a greenlet under gevent) for the process's life."""
        threading.Thread(target=self._run, daemon=True, name="gc-freezer").start()

    def _run(self) -> None:
        while True:
            time.sleep(self.freeze_every_s)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the collector must not stay frozen
                log.exception("garbage collector: freezing failed; left to collect on its own")
                gc.unfreeze()
                return
