"""Short garbage-collector pauses for a process that holds thousands of long-lived
connections (an API worker's open streams and waiting syncs).

CPython's full collection walks every object the collector tracks, and it runs each
time the long-lived objects have grown by a quarter. Measured on an API worker
(gc.callbacks around each collection, `python -m bench.stream streaming`, 2026-11-30
12:02-12:05Z): 0.3-0.9 s at 2,000-3,000 open streams, 1.1-2.2 s at 4,000-5,000; every
stream and request of the worker waits that long, which was the whole p99 of the sends
at 8,000 and 10,000 streams (0.85-1.1 s).

So every FREEZE_EVERY_S the objects that exist then are frozen (gc.freeze: moved out of
the collector's sight; reference counting still frees them), and only what was made
since is walked. The young generations are collected first (a few milliseconds); older
cyclic garbage frozen with the rest waits for the next thaw: every
THAW_EVERY_S everything is unfrozen and collected once, one long pause in that while
instead of one whenever the streams grew by a quarter. Freezing every 10 s (the same
bench, 12:12-12:18Z): the longest pause 0.33 s, p99 from send to frame 144 ms at 8,000
streams and 48 ms at 10,000 (without, 12:02Z: 936 and 846 ms; every 60 s, 12:07Z:
pauses up to 0.6 s, 59 and 667 ms).
`PUSH_API_GC_FREEZE_S` sets the while (gunicorn_conf.py; 0 turns it off).
"""

from __future__ import annotations

import gc
import logging
import threading
import time

log = logging.getLogger(__name__)

FREEZE_EVERY_S = 10.0
THAW_EVERY_S = 1800.0


class Freezer:
    def __init__(self, freeze_every_s: float = FREEZE_EVERY_S, thaw_every_s: float = THAW_EVERY_S):
        self.freeze_every_s = freeze_every_s
        self.thaw_every_s = thaw_every_s
        self._thawed_at = time.monotonic()
        self._stop = threading.Event()

    def tick(self, now: float | None = None) -> None:
        """Freeze what lives now; once a THAW_EVERY_S, thaw and collect everything first."""
        now = time.monotonic() if now is None else now
        if now - self._thawed_at >= self.thaw_every_s:
            gc.unfreeze()
            started = time.perf_counter()
            gc.collect()
            log.info("full collection after a thaw: %.0f ms", (time.perf_counter() - started) * 1e3)
            self._thawed_at = now
        else:
            gc.collect(1)  # the young garbage goes now, not frozen with the rest
        gc.freeze()

    def start(self) -> None:
        """Tick in the background (a greenlet under gevent) until stop()."""
        threading.Thread(target=self._run, daemon=True, name="gc-freezer").start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.freeze_every_s):
            self.tick()
