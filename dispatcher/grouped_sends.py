"""Single notifications (`POST /v1/notifications`) that concurrent requests of one
process make, sent together: each request hands its send over and waits for its own
outcome, and what arrived meanwhile, whatever its app, goes out as one batch
(dispatcher.batch.notify_apps: one `SELECT ... IN` a kind of target an app, one
multi-row INSERT, every publish with its confirm in flight, one wake-up signal).

A send used to pass through four batchers of its own (the device query, the row, the
publish, the wake-up), each with its own hand-over and its own round trip, which made
those round trips ~40% of an API worker's time under 16 concurrent senders (py-spy,
docs/capacity.md). One hand-over a send and one group for all its round trips costs less,
and the groups are larger.

A send answers as it would alone: its id and targets, or its own error (no such device,
too large; the broker's or the database's trouble: 503, and nothing half-written, see
dispatcher.batch). A send that waited QUEUED_MAX_S behind slow groups (a broker that
takes messages and does not confirm them) is not sent at all: 503, nothing written, so
that its caller never gives up on a send that may still go out. A resend under an
Idempotency-Key, and an order event's message, keep to dispatcher.services.notify: their
rows may exist already.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dispatcher.batch import Item, notify_apps
from dispatcher.messages import Content, Target
from dispatcher.services import Dispatch, Sent
from pushbox_core import metrics
from pushbox_core.batching import Batcher
from pushbox_core.errors import BrokerUnavailable, DeliveryUnknown, PushboxError

QUEUED_MAX_S = 20.0
# a group's own limits end it well before this (MySQL's 30 s a statement; a publish
# gives up after three attempts of at most 15 s each), so a caller that waited its turn
# hears its own outcome; past it (a stuck process) the send may still go out: unknown
WAIT_MAX_S = QUEUED_MAX_S + 240.0


@dataclass(frozen=True)
class _Send:
    app_id: str
    item: Item
    queued_at: float = field(default_factory=time.monotonic)


class GroupedSends:
    def __init__(self, d: Dispatch, *, queued_max_s: float = QUEUED_MAX_S):
        self._d = d
        self._queued_max_s = queued_max_s
        self._sends: Batcher[_Send, Sent] = Batcher(
            self._run, name="notification-sends", unavailable=DeliveryUnknown, wait_max_s=WAIT_MAX_S
        )

    def notify(self, app_id: str, target: Target, content: Content) -> Sent:
        """One new notification, sent with whatever else waits; raises its own error."""
        with metrics.SEND_SECONDS.labels("notification").time():
            return self._sends(_Send(app_id, Item(target, content)))

    def close(self) -> None:
        """Send what waits, then stop."""
        self._sends.close()

    def _run(self, sends: list[_Send]) -> Sequence[Sent | PushboxError]:
        too_late = time.monotonic() - self._queued_max_s
        late = BrokerUnavailable(
            f"not sent: the sends before it took over {self._queued_max_s:g} s"
        )
        return notify_apps(
            [(s.app_id, late if s.queued_at < too_late else s.item) for s in sends], d=self._d
        )
