"""Many notifications in one call (`POST /v1/notifications/batch`): each item stands
alone (its own id, targets and outcome), and all of them share one round trip per
dependency: one `SELECT ... IN` per kind of target (device, user, topic), one
multi-row INSERT of their rows, and every publish with its confirm in flight at once.

What an item answers, and what stays of it:
- sent: its row, and its message in every target device's queue;
- an error before publishing (no such device, too large): nothing;
- no queue took it, or the broker never had it: nothing (its row is removed);
- written to the broker and never confirmed (DeliveryUnknown): its row, marked to be
  sent again, and an error naming its id (as a single send's 503 does).
MySQL down before anything was published fails the whole call (503), nothing written."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher import messages
from dispatcher.messages import Content, Message, Target
from dispatcher.platforms.wake_jobs import WakeJob, wake_mode
from dispatcher.services import Dispatch, Sent, repair_topology, routing_key, sent_event
from pushbox_core.errors import (
    DeliveryUnknown,
    DeviceNotFound,
    NotDelivered,
    PushboxError,
)
from pushbox_core.rabbit import Outgoing

log = logging.getLogger(__name__)

BATCH_MAX = 500


@dataclass(frozen=True)
class Item:
    """One notification of a batch, parsed."""

    target: Target
    content: Content


@dataclass
class _Send:
    index: int
    message: Message
    target: Target
    devices: list[tuple[str, bool]]  # (device id, wakeable)
    wake: str


def notify_many(
    app_id: str, items: Sequence[Item | PushboxError], *, d: Dispatch
) -> list[Sent | PushboxError]:
    """One result an item, in order: Sent, or the error of that item alone. An item
    given as an error (it did not parse) stays that error."""
    results: list[Sent | PushboxError] = [
        item if isinstance(item, PushboxError) else DeviceNotFound("") for item in items
    ]
    wanted = [(i, item) for i, item in enumerate(items) if isinstance(item, Item)]
    found = _audiences(app_id, [item.target for _, item in wanted], d=d)
    sends: list[_Send] = []
    for i, item in wanted:
        devices = found.get((item.target.kind, item.target.value or ""), [])
        if not devices:
            results[i] = DeviceNotFound(
                f"no active device for {item.target.kind} {item.target.value!r}"
            )
            continue
        try:
            message = messages.build("notification", item.content)
        except PushboxError as e:
            results[i] = e
            continue
        sends.append(_Send(i, message, item.target, devices, wake_mode(item.content)))
    d.notifications.record_many(app_id, [(s.message, s.target, len(s.devices)) for s in sends])
    outcomes = _publish(app_id, sends, d=d)
    unknown, failed = [], []
    for s, error in zip(sends, outcomes, strict=True):
        if error is None:
            results[s.index] = Sent(s.message.id, len(s.devices))
        elif isinstance(error, DeliveryUnknown):
            unknown.append(s.message.id)
            results[s.index] = DeliveryUnknown(error.detail, message_id=s.message.id)
        else:
            failed.append(s.message.id)
            results[s.index] = error
    _settle_rows(unknown, failed, d=d)
    sent = [s for s, error in zip(sends, outcomes, strict=True) if error is None]
    _after(app_id, sent, d=d)
    return results


def _audiences(
    app_id: str, targets: list[Target], *, d: Dispatch
) -> dict[tuple[str, str], list[tuple[str, bool]]]:
    """Each target's active devices: one query a kind of target."""
    by_kind: dict[str, set[str]] = {}
    for t in targets:
        by_kind.setdefault(t.kind, set()).add(t.value or "")
    found = {}
    for kind, values in by_kind.items():
        for value, devices in d.store.audiences(app_id, kind, sorted(values)).items():
            found[(kind, value)] = devices
    return found


def _publish(app_id: str, sends: list[_Send], *, d: Dispatch) -> list[PushboxError | None]:
    """Every message with its confirm in flight; those no queue took get their devices'
    topology back (as a single send does) and one more try."""

    def outgoing(s: _Send) -> Outgoing:
        m = s.message
        return Outgoing(
            d.names.direct_exchange(m.priority),
            routing_key(app_id, s.target),
            m.encode(),
            m.id,
            headers=m.headers(),
            expiration_ms=m.ttl_s * 1000,
        )

    outcomes = d.rabbit.publish_many([outgoing(s) for s in sends])
    again = [i for i, o in enumerate(outcomes) if isinstance(o, NotDelivered)]
    if again:
        try:
            repair_topology(app_id, [dev for i in again for dev, _ in sends[i].devices], d=d)
        except PushboxError as e:
            log.warning("batch: could not repair the topology: %s", e)
            return outcomes
        for i, o in zip(
            again, d.rabbit.publish_many([outgoing(sends[i]) for i in again]), strict=True
        ):
            outcomes[i] = o
    return outcomes


def _settle_rows(unknown: list[str], failed: list[str], *, d: Dispatch) -> None:
    """Rows of sends that may be delivered yet are marked so; rows of sends that
    reached no queue are removed."""
    try:
        d.notifications.mark_sending_many(unknown)
    except PushboxError as e:
        log.warning("batch: %d unconfirmed notifications not marked so: %s", len(unknown), e)
    try:
        d.notifications.forget_many(failed)
    except PushboxError as e:
        log.warning("batch: rows of %d unsent notifications left: %s", len(failed), e)


def _after(app_id: str, sent: list[_Send], *, d: Dispatch) -> None:
    """Tell other services (`notification.sent`, as a single send does), wake waiting
    syncs and queue platform wakes for what was sent."""
    if not sent:
        return
    for s in sent:
        sent_event(app_id, s.message, s.target, len(s.devices), d=d)
    d.signals.wake_devices({device_id for s in sent for device_id, _ in s.devices})
    jobs = []
    for s in sent:
        wakeable = [device_id for device_id, has_token in s.devices if has_token]
        if wakeable and s.wake != "none":
            jobs.append(WakeJob.of(app_id, s.message, s.wake, wakeable))
    if jobs:
        d.wakes.request_many(jobs)
