"""Counters fed by syncs (acked, expired, collapsed) and by the wake worker (woken,
wake_failed), added up in each process and written to the notifications' rows in the
background; the acks also go out as `notification.acked` events (pushbox_core.events),
one per app a flush."""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
from collections.abc import Callable

from dispatcher.notifications import Notifications
from pushbox_core.errors import PushboxError
from pushbox_core.events import Events
from pushbox_core.forks import ForkGuard

log = logging.getLogger(__name__)

TALLY_FLUSH_S = 0.25  # how far the sync counters may lag
RETRY_MAX_S = 5.0  # while MySQL is down, a flush is tried again at most this far apart


class Tally:
    """Counters fed by syncs, written in the background: every `flush_s`, one UPDATE
    per counter for everything the process's syncs counted meanwhile. A sync then
    writes nothing to MySQL, and a broadcast acked by thousands of devices updates
    its row once per flush instead of once per device. While MySQL is down the counts
    wait (up to PENDING_MAX counters, then the oldest flush is dropped) and the flush is
    tried again after twice as long each time, up to RETRY_MAX_S; counts not yet
    written die with a killed process (statistics: no message depends on them).

    The acks of a device's syncs (`for_device`) are kept too, and each flush publishes
    them as one `notification.acked` event per app (several past
    events.ACKS_PER_EVENT_MAX): a drain of thousands of messages costs a few events,
    not one each. Without `events` (tests of the counting), counts only."""

    PENDING_MAX = 100_000

    def __init__(
        self,
        notifications: Notifications,
        events: Events | None = None,
        flush_s: float = TALLY_FLUSH_S,
    ):
        self.notifications = notifications
        self.events = events
        self.flush_s = flush_s
        self._pending: collections.Counter[tuple[str, str]] = collections.Counter()
        self._acks: dict[str, list[tuple[str, str]]] = {}  # app: (notification, device)
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # held for a whole flush (see flush)
        self._fork = ForkGuard()
        self._writing = False

    def for_device(self, app_id: str, device_id: str) -> Callable[[dict], None]:
        """What a device's sync counts with: its acks also become events."""

        def count(counts: dict[tuple[str, str], int]) -> None:
            acked = [n for (n, counter) in counts if counter == "acked"]
            self.add(counts, acks=(app_id, [(n, device_id) for n in acked]))

        return count

    def add(
        self,
        counts: dict[tuple[str, str], int],
        acks: tuple[str, list[tuple[str, str]]] | None = None,
    ) -> None:
        """`acks`: (app id, [(notification id, device id)]) for the acked event."""
        with self._lock:
            if self._fork.forked():  # the parent's counts: the parent writes them
                self._pending.clear()
                self._acks = {}
                self._writing = False
            if not self._writing:  # first use in this process: start a writer
                self._writing = True
                threading.Thread(target=self._loop, daemon=True, name="tally").start()
                atexit.register(self.flush)
            self._pending.update(counts)
            if acks and acks[1] and self.events is not None:
                self._acks.setdefault(acks[0], []).extend(acks[1])

    def pending(self) -> int:
        """How many counters wait to be written."""
        with self._lock:
            return len(self._pending)

    def flush(self) -> bool:
        """Write what was counted; False when MySQL is down (the counts are kept). One
        flush at a time: a stop's flush waits for the writer's write in progress (which
        may put its counts back) rather than find nothing pending and return."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> bool:
        with self._lock:
            counts, self._pending = self._pending, collections.Counter()
            acks, self._acks = self._acks, {}
        if self.events is not None:
            for app_id, pairs in acks.items():
                self.events.notifications_acked(app_id, pairs)
        if not counts:
            return True
        try:
            self.notifications.count(dict(counts))
        except PushboxError as e:  # MySQL is down: keep them for the next flush
            with self._lock:
                if len(self._pending) + len(counts) <= self.PENDING_MAX:
                    self._pending.update(counts)
                    log.warning("could not write %d counters yet: %s", len(counts), e)
                    return False
            log.warning("dropped %d counters: MySQL down too long: %s", len(counts), e)
            return False
        return True

    def _loop(self) -> None:
        wait = self.flush_s
        while True:
            time.sleep(wait)
            try:
                written = self.flush()
            except Exception:  # a bad row must not stop the counting for good
                log.exception("writing counters failed")
                written = False
            # MySQL down: tried again less often the longer it lasts
            wait = self.flush_s if written else min(wait * 2, max(RETRY_MAX_S, self.flush_s))
