"""Events for other services: what happened to devices and messages, published to the
durable topic exchange `<ns>.events` (routing key = the event's name) by the process
that made the change. Other services bind queues of their own (`#`, `device.*`, ...).

A body is JSON `{event, at (RFC 3339), app_id, ...}` with the ids the event concerns;
`notification.acked` carries many acks at once (`acks: [{notification_id,
device_id}]`): syncs add them up and one event per app goes out a flush
(dispatcher.delivery.tally), so a drain pays no publish per message.

Publishing never delays the change's caller: `emit` hands the event to a background
sender that publishes whatever waits at once, persistent, with publisher confirms
(many in flight, one round trip), and tries once more what the broker refused.
What still fails is logged and counted (`pushbox_dependency_errors_total`,
dependency rabbitmq): an event is then lost, never the change itself. Events waiting
in the sender when a process stops are sent by `close`.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

from pushbox_core import metrics
from pushbox_core.batching import Batcher
from pushbox_core.errors import BrokerUnavailable, PushboxError
from pushbox_core.names import Names
from pushbox_core.rabbit import Outgoing, Rabbit
from pushbox_core.times import rfc3339

log = logging.getLogger(__name__)

DEVICE_REGISTERED = "device.registered"
DEVICE_DELETED = "device.deleted"
TOKEN_INVALID = "token.invalid"
NOTIFICATION_SENT = "notification.sent"
NOTIFICATION_ACKED = "notification.acked"
CAMPAIGN_FINISHED = "campaign.finished"
ALL = (
    DEVICE_REGISTERED,
    DEVICE_DELETED,
    TOKEN_INVALID,
    NOTIFICATION_SENT,
    NOTIFICATION_ACKED,
    CAMPAIGN_FINISHED,
)

ACKS_PER_EVENT_MAX = 1_000  # acks in one notification.acked body

Event = tuple[str, bytes, str]  # routing key (the event's name), body, message id


def body(event: str, app_id: str, **fields: object) -> dict:
    """An event's body: `{event, at, app_id, ...fields}`."""
    return {"event": event, "at": rfc3339(datetime.now(UTC)), "app_id": str(app_id), **fields}


class Events:
    def __init__(self, rabbit: Rabbit, names: Names):
        self.rabbit = rabbit
        self.exchange = names.events_exchange
        self._declared = False
        self._sender: Batcher[Event, None] = Batcher(
            self._publish, name="events", unavailable=BrokerUnavailable
        )

    # ---- one function an event
    def device_registered(
        self, app_id: str, device_id: str, installation_id: str, *, again: bool
    ) -> None:
        """A device registered (`again`: an installation that had registered before, now
        with a new secret)."""
        self.emit(
            DEVICE_REGISTERED,
            app_id,
            device_id=device_id,
            installation_id=installation_id,
            again=again,
        )

    def device_deleted(self, app_id: str, device_id: str) -> None:
        self.emit(DEVICE_DELETED, app_id, device_id=device_id)

    def token_invalid(self, app_id: str, device_id: str, provider: str, reason: str) -> None:
        """FCM or APNs said the device's push token is dead (it is used no more)."""
        self.emit(TOKEN_INVALID, app_id, device_id=device_id, provider=provider, reason=reason)

    def notification_sent(
        self, app_id: str, notification_id: str, kind: str, targets: int, **target: str | None
    ) -> None:
        """The broker confirmed a send (`target`: device_id, user_id or topic)."""
        fields = {k: v for k, v in target.items() if v is not None}
        self.emit(
            NOTIFICATION_SENT,
            app_id,
            notification_id=notification_id,
            kind=kind,
            targets=targets,
            **fields,
        )

    def notifications_acked(self, app_id: str, acks: list[tuple[str, str]]) -> None:
        """Devices acked these (notification id, device id): one event per
        ACKS_PER_EVENT_MAX of them."""
        for i in range(0, len(acks), ACKS_PER_EVENT_MAX):
            chunk = acks[i : i + ACKS_PER_EVENT_MAX]
            self.emit(
                NOTIFICATION_ACKED,
                app_id,
                acks=[{"notification_id": n, "device_id": d} for n, d in chunk],
            )

    def campaign_finished(
        self, app_id: str, campaign_id: str, status: str, **counts: int | None
    ) -> None:
        """A campaign ended (done, cancelled or failed), with its counters."""
        self.emit(CAMPAIGN_FINISHED, app_id, campaign_id=campaign_id, status=status, **counts)

    # ---- sending
    def emit_now(self, event: str, app_id: str, **fields: object) -> None:
        """Publish the event and wait for its confirm: for a process about to end (a
        campaign job's forked work horse), where the background sender may not get to it."""
        self._publish([_event(event, app_id, **fields)])

    def emit(self, event: str, app_id: str, **fields: object) -> None:
        """Publish the event in the background (see the module's doc)."""
        self._sender.submit(_event(event, app_id, **fields))

    def close(self) -> None:
        """Send what waits, then stop the sender."""
        self._sender.close()

    def _publish(self, events: list[Event]) -> list[None]:
        failed = self._try(events)
        if failed:  # the exchange may be gone (deleted, a new broker): once more
            self._declared = False
            failed = self._try([e for e, _ in failed])
        for (key, _, _), error in failed:
            metrics.dependency_failed("rabbitmq")
            log.warning("event %s not published: %s", key, error)
        return [None] * len(events)

    def _try(self, events: list[Event]) -> list[tuple[Event, PushboxError]]:
        try:
            self._declare()
        except PushboxError as e:
            return [(event, e) for event in events]
        results = self.rabbit.publish_many(
            [
                Outgoing(self.exchange, key, body, message_id, mandatory=False)
                for key, body, message_id in events
            ]
        )
        failed = []
        for event, error in zip(events, results, strict=True):
            if error is None:
                metrics.EVENTS.labels(event[0]).inc()
            else:
                failed.append((event, error))
        return failed

    def _declare(self) -> None:
        if not self._declared:
            self.rabbit.call(lambda ch: ch.exchange_declare(self.exchange, "topic", durable=True))
            self._declared = True


def _event(event: str, app_id: str, **fields: object) -> Event:
    """What the sender publishes: (routing key, JSON body, message id)."""
    payload = json.dumps(body(event, app_id, **fields), separators=(",", ":")).encode()
    return event, payload, uuid.uuid4().hex
