"""Single notifications (`POST /v1/notifications`) that concurrent requests of one
process make, sent together: each request hands its send over and waits for its own
outcome, and what arrived meanwhile goes out as one batch (dispatcher.batch.notify_many:
one `SELECT ... IN` a kind of target, one multi-row INSERT, every publish with its
confirm in flight, one wake-up signal).

A send used to pass through four batchers of its own (the device query, the row, the
publish, the wake-up), each with its own hand-over and its own round trip, which made
those round trips ~40% of an API worker's time under 16 concurrent senders (py-spy,
docs/capacity.md). One hand-over a send and one group for all its round trips costs less,
and the groups are larger.

A send answers as it would alone: its id and targets, or its own error (no such device,
too large; the broker's or the database's trouble: 503, and nothing half-written, see
dispatcher.batch). A resend under an Idempotency-Key, and an order event's message,
keep to dispatcher.services.notify: their rows may exist already.
"""

from __future__ import annotations

from collections.abc import Sequence

from dispatcher.batch import Item, notify_many
from dispatcher.messages import Content, Target
from dispatcher.services import Dispatch, Sent
from pushbox_core import metrics
from pushbox_core.batching import Batcher
from pushbox_core.errors import DeliveryUnknown, PushboxError

_Send = tuple[str, Item]  # app id, what to send


class GroupedSends:
    def __init__(self, d: Dispatch):
        self._d = d
        self._sends: Batcher[_Send, Sent] = Batcher(
            self._run, name="notification-sends", unavailable=DeliveryUnknown
        )

    def notify(self, app_id: str, target: Target, content: Content) -> Sent:
        """One new notification, sent with whatever else waits; raises its own error."""
        with metrics.SEND_SECONDS.labels("notification").time():
            return self._sends((app_id, Item(target, content)))

    def close(self) -> None:
        """Send what waits, then stop."""
        self._sends.close()

    def _run(self, sends: list[_Send]) -> Sequence[Sent | Exception]:
        results: list[Sent | Exception] = [RuntimeError("not sent")] * len(sends)
        by_app: dict[str, list[int]] = {}
        for i, (app_id, _) in enumerate(sends):
            by_app.setdefault(app_id, []).append(i)
        for app_id, indexes in by_app.items():
            outcomes: Sequence[Sent | Exception]
            try:
                outcomes = notify_many(app_id, [sends[i][1] for i in indexes], d=self._d)
            except PushboxError as e:  # nothing of this app's sends was published
                outcomes = [e] * len(indexes)
            for i, outcome in zip(indexes, outcomes, strict=True):
                results[i] = outcome
        return results
