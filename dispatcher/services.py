"""Sending: broadcasts to every device of an app, notifications to one device, one
user's devices or a topic. Each send is recorded, published persistent with publisher
confirms, and reported only once the broker confirmed it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from device_registry.services import route_of
from device_registry.store import Store
from device_registry.topology import Topology
from dispatcher import messages
from dispatcher.campaigns.caps import Caps
from dispatcher.delivery.signals import Signals
from dispatcher.messages import Content, Message, Target
from dispatcher.notifications import Notification, Notifications
from dispatcher.platforms.wake_jobs import WakeJob, WakeQueue, wake_mode
from pushbox_core import metrics
from pushbox_core.errors import (
    DeliveryUnknown,
    DeviceNotFound,
    NotDelivered,
    NotificationNotFound,
    PushboxError,
)
from pushbox_core.events import Events
from pushbox_core.names import Names
from pushbox_core.rabbit import Rabbit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    id: str
    targets: int


@dataclass(frozen=True)
class Dispatch:
    """What sending needs; built once per process."""

    store: Store
    notifications: Notifications
    rabbit: Rabbit
    topology: Topology
    names: Names
    signals: Signals
    wakes: WakeQueue
    events: Events
    caps: Caps  # the marketing cap: normal-priority broadcasts count against it


@dataclass(frozen=True)
class Destination:
    """Where a message is published; `repair`: the devices whose queues are declared
    again when a mandatory publish reaches no queue."""

    exchange: str
    key: str
    mandatory: bool
    repair: tuple[str, ...] = ()


# where a message's id comes from, which decides what a row already there means
NEW = "new"  # a fresh id: no row can exist
EVENT = "event"  # derived from an order event: a row marked sent means done already
RESEND = "resend"  # the retry of an unconfirmed send: goes out again whatever its row says

# what a notification.sent event calls its target (a broadcast names none)
EVENT_TARGET_FIELDS = {"device": "device_id", "user": "user_id", "topic": "topic"}


@metrics.SEND_SECONDS.labels("broadcast").time()
def broadcast(app_id: str, content: Content, *, d: Dispatch, resend_id: str | None = None) -> Sent:
    """To every device of the app. With resend_id (a retry of an unconfirmed send), it
    goes out again under that id (devices dedupe by id)."""
    message = messages.build("broadcast", content, message_id=resend_id)
    targets, wakeable = d.store.count_app_devices(app_id)
    d.topology.ensure_app(app_id)
    route = Destination(d.names.broadcast_exchange(app_id, message.priority), "", mandatory=False)
    origin = NEW if resend_id is None else RESEND
    _record_and_publish(app_id, message, Target("app"), targets, route, origin, d=d)
    if message.priority == "normal":  # a fanout can't skip a capped device: it counts
        d.caps.count_broadcast(app_id, message.id)
    d.signals.wake_app(app_id)
    mode = wake_mode(content)
    if wakeable and mode != "none":
        d.wakes.request(WakeJob.of(app_id, message, mode, None))
    return Sent(message.id, targets)


@metrics.SEND_SECONDS.labels("notification").time()
def notify(
    app_id: str,
    target: Target,
    content: Content,
    *,
    d: Dispatch,
    message_id: str | None = None,
    resend_id: str | None = None,
) -> Sent:
    """One notification to a device, a user's devices or a topic's devices. With a
    message_id already recorded (a redelivered order event), nothing is sent again if
    it was confirmed; with resend_id (a retry of an unconfirmed send), it goes out again
    under that id whatever its row says (devices dedupe by id)."""
    found = audience(app_id, target, store=d.store)
    devices = [device_id for device_id, _ in found]
    origin = RESEND if resend_id else EVENT if message_id else NEW
    message = messages.build("notification", content, message_id=resend_id or message_id)
    route = Destination(
        d.names.direct_exchange(message.priority),
        routing_key(app_id, target),
        mandatory=True,
        repair=tuple(devices),
    )
    published = _record_and_publish(app_id, message, target, len(devices), route, origin, d=d)
    d.signals.wake_devices(devices)
    wakeable = [device_id for device_id, has_token in found if has_token]
    mode = wake_mode(content)
    if published and wakeable and mode != "none":
        d.wakes.request(WakeJob.of(app_id, message, mode, wakeable))
    return Sent(message.id, len(devices))


def audience(app_id: str, target: Target, *, store: Store) -> list[tuple[str, bool]]:
    """The target's active devices: (device id, has an active push token)."""
    found: list[tuple[str, bool]]
    if target.kind == "device":
        value = target.value or ""
        wakeable = store.active_device_of_app(app_id, value)
        found = [] if wakeable is None else [(value, wakeable)]
    elif target.kind == "user":
        found = store.user_devices(app_id, target.value or "")
    elif target.kind == "topic":
        found = store.topic_devices(app_id, target.value or "")
    else:
        raise ValueError(target.kind)
    if not found:
        raise DeviceNotFound(f"no active device for {target.kind} {target.value!r}")
    return found


def routing_key(app_id: str, target: Target) -> str:
    value = target.value or ""
    if target.kind == "device":
        return Names.device_key(value)
    if target.kind == "user":
        return Names.user_key(app_id, value)
    return Names.topic_key(app_id, value)


def _record_and_publish(
    app_id: str,
    message: Message,
    target: Target,
    targets: int,
    route: Destination,
    origin: str,
    *,
    d: Dispatch,
) -> bool:
    """Whether it was published now (False: an order event's message, sent before)."""
    # an id not made here (an order event's, a resend's) may come back after a crash
    # or an unconfirmed publish: it is recorded as "sending" until the broker confirmed,
    # and published again if it comes back so
    fixed_id = origin != NEW
    earlier = d.notifications.record(
        app_id, message, target, targets, state="sending" if fixed_id else "sent"
    )
    if earlier == "sent" and origin == EVENT:  # a resend's row may say sent, unconfirmed
        log.info("notification %s was sent already; not sending it again", message.id)
        return False
    try:
        try:
            _publish(message, route, d=d)
        except NotDelivered:
            repair_topology(app_id, route.repair, d=d)
            _publish(message, route, d=d)
    except DeliveryUnknown as e:
        # the broker may deliver it yet: keep the row (its counts land there), marked
        # to be published again if the same id comes back
        if not fixed_id:
            _mark_unconfirmed(message.id, d=d)
        raise DeliveryUnknown(e.detail, message_id=message.id) from e
    except PushboxError:
        if earlier is None:  # this call's own row, and nothing of it reached a queue
            _forget(message.id, d=d)
        raise
    if fixed_id:
        d.notifications.mark_sent(message.id)
    sent_event(app_id, message, target, targets, d=d)
    return True


def sent_event(app_id: str, message: Message, target: Target, targets: int, *, d: Dispatch) -> None:
    """`notification.sent` for other services: the broker confirmed a send."""
    field = EVENT_TARGET_FIELDS.get(target.kind)
    d.events.notification_sent(
        app_id, message.id, message.kind, targets, **({field: target.value} if field else {})
    )


def repair_topology(app_id: str, device_ids: Iterable[str], *, d: Dispatch) -> list[str]:
    """A mandatory publish reached no queue (or no exchange): the topology is gone,
    deleted by hand or lost with a broker, which may have lost its exchanges too. The
    app's exchanges are declared again, and the queues of those devices still active;
    returns those devices' ids."""
    d.topology.forget_declared()
    d.topology.ensure_app(app_id)
    repaired = []
    for device_id in device_ids:
        device = d.store.device(device_id)
        if device is not None and device.active:
            d.topology.ensure_device(route_of(device))
            repaired.append(device_id)
    return repaired


def _publish(message: Message, route: Destination, *, d: Dispatch) -> None:
    d.rabbit.publish(
        route.exchange,
        route.key,
        message.encode(),
        message_id=message.id,
        expiration_ms=message.ttl_s * 1000,
        mandatory=route.mandatory,
        headers=message.headers(),
    )


def _mark_unconfirmed(notification_id: str, *, d: Dispatch) -> None:
    try:
        d.notifications.mark_sending(notification_id)
    except PushboxError:  # a redelivered order event would then not be sent again
        log.warning("notification %s: unconfirmed, and not marked so", notification_id)


def _forget(notification_id: str, *, d: Dispatch) -> None:
    try:
        d.notifications.forget(notification_id)
    except PushboxError:
        log.warning("notification %s: not sent, and its row could not be removed", notification_id)


def stats(app_id: str, notification_id: str, *, notifications: Notifications) -> Notification:
    found = notifications.get(app_id, notification_id)
    if found is None:
        raise NotificationNotFound(f"no notification {notification_id!r} in this app")
    return found
