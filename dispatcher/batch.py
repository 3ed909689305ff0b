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
    app_id: str
    message: Message
    target: Target
    devices: list[tuple[str, bool]]  # (device id, wakeable)
    wake: str


def notify_many(
    app_id: str, items: Sequence[Item | PushboxError], *, d: Dispatch
) -> list[Sent | PushboxError]:
    """One result an item, in order: Sent, or the error of that item alone. An item
    given as an error (it did not parse) stays that error."""
    return notify_apps([(app_id, item) for item in items], d=d)


def notify_apps(
    items: Sequence[tuple[str, Item | PushboxError]], *, d: Dispatch
) -> list[Sent | PushboxError]:
    """As notify_many, for items of any apps, (app id, item): still one round trip a
    dependency for all of them (dispatcher.grouped_sends)."""
    results: list[Sent | PushboxError] = [
        item if isinstance(item, PushboxError) else DeviceNotFound("") for _, item in items
    ]
    wanted = [(i, app_id, item) for i, (app_id, item) in enumerate(items) if isinstance(item, Item)]
    found = _audiences([(app_id, item.target) for _, app_id, item in wanted], d=d)
    sends: list[_Send] = []
    for i, app_id, item in wanted:
        devices = found.get((app_id, item.target.kind, item.target.value or ""), [])
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
        sends.append(_Send(i, app_id, message, item.target, devices, wake_mode(item.content)))
    d.notifications.record_many([(s.app_id, s.message, s.target, len(s.devices)) for s in sends])
    outcomes = _publish(sends, d=d)
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
    _after(sent, d=d)
    return results


def _audiences(
    targets: list[tuple[str, Target]], *, d: Dispatch
) -> dict[tuple[str, str, str], list[tuple[str, bool]]]:
    """Each (app, target)'s active devices, by (app id, kind, value): one query a kind
    of target an app."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for app_id, t in targets:
        wanted.setdefault((app_id, t.kind), set()).add(t.value or "")
    found = {}
    for (app_id, kind), values in wanted.items():
        for value, devices in d.store.audiences(app_id, kind, sorted(values)).items():
            found[(app_id, kind, value)] = devices
    return found


def _publish(sends: list[_Send], *, d: Dispatch) -> list[PushboxError | None]:
    """Every message with its confirm in flight; those no queue took get their devices'
    topology back (as a single send does) and one more try."""

    def outgoing(s: _Send) -> Outgoing:
        m = s.message
        return Outgoing(
            d.names.direct_exchange(m.priority),
            routing_key(s.app_id, s.target),
            m.encode(),
            m.id,
            headers=m.headers(),
            expiration_ms=m.ttl_s * 1000,
        )

    outcomes = d.rabbit.publish_many([outgoing(s) for s in sends])
    lost: dict[str, list[int]] = {}  # by app: the sends no queue took
    for i, o in enumerate(outcomes):
        if isinstance(o, NotDelivered):
            lost.setdefault(sends[i].app_id, []).append(i)
    again = []
    for app_id, indexes in lost.items():
        try:
            repair_topology(app_id, [dev for i in indexes for dev, _ in sends[i].devices], d=d)
        except PushboxError as e:  # as a single send: the repair's own error, nothing sent
            log.warning("batch: could not repair the topology: %s", e)
            for i in indexes:
                outcomes[i] = e
            continue
        again += indexes
    if again:
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


def _after(sent: list[_Send], *, d: Dispatch) -> None:
    """Tell other services (`notification.sent`, as a single send does), wake waiting
    syncs and queue platform wakes for what was sent."""
    if not sent:
        return
    for s in sent:
        sent_event(s.app_id, s.message, s.target, len(s.devices), d=d)
    d.signals.wake_devices({device_id for s in sent for device_id, _ in s.devices})
    jobs = []
    for s in sent:
        wakeable = [device_id for device_id, has_token in s.devices if has_token]
        if wakeable and s.wake != "none":
            jobs.append(WakeJob.of(s.app_id, s.message, s.wake, wakeable))
    if jobs:
        d.wakes.request_many(jobs)
