"""Counters fed by syncs (acked, expired, collapsed), added up in each process and
written to the notifications' rows in the background."""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time

from dispatcher.notifications import Notifications
from pushbox_core.errors import PushboxError
from pushbox_core.forks import ForkGuard

log = logging.getLogger(__name__)

TALLY_FLUSH_S = 0.25  # how far the sync counters may lag


class Tally:
    """Counters fed by syncs, written in the background: every `flush_s`, one UPDATE
    per counter for everything the process's syncs counted meanwhile. A sync then
    writes nothing to MySQL, and a broadcast acked by thousands of devices updates
    its row once per flush instead of once per device. While MySQL is down the counts
    wait (up to PENDING_MAX counters, then the oldest flush is dropped); counts
    not yet written die with a killed process (statistics: no message depends on them)."""

    PENDING_MAX = 100_000

    def __init__(self, notifications: Notifications, flush_s: float = TALLY_FLUSH_S):
        self.notifications = notifications
        self.flush_s = flush_s
        self._pending: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()
        self._fork = ForkGuard()
        self._writing = False

    def add(self, counts: dict[tuple[str, str], int]) -> None:
        with self._lock:
            if self._fork.forked():  # the parent's counts: the parent writes them
                self._pending.clear()
                self._writing = False
            if not self._writing:  # first use in this process: start a writer
                self._writing = True
                threading.Thread(target=self._loop, daemon=True, name="tally").start()
                atexit.register(self.flush)
            self._pending.update(counts)

    def flush(self) -> None:
        with self._lock:
            counts, self._pending = self._pending, collections.Counter()
        if not counts:
            return
        try:
            self.notifications.count(dict(counts))
        except PushboxError as e:  # MySQL is down: keep them for the next flush
            with self._lock:
                if len(self._pending) + len(counts) <= self.PENDING_MAX:
                    self._pending.update(counts)
                    log.warning("could not count %d acks/drops yet: %s", len(counts), e)
                    return
            log.warning("dropped %d acks/drops: MySQL down too long: %s", len(counts), e)

    def _loop(self) -> None:
        while True:
            time.sleep(self.flush_s)
            try:
                self.flush()
            except Exception:  # a bad row must not stop the counting for good
                log.exception("writing sync counters failed")
