"""`POST /v1/device/sync` as a service: ack, read, and wait, with the hand-over of a
device between API processes. The broker work is the mailbox's; what to return is
decided in `decisions.py`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from device_registry.sessions import Session
from dispatcher.delivery.connections import Connections
from dispatcher.delivery.decisions import Taken
from dispatcher.delivery.holders import Holders
from dispatcher.delivery.keepalive import KeepAlive
from dispatcher.delivery.mailbox import Mailbox
from dispatcher.delivery.signals import Listener, Signals
from pushbox_core import metrics
from pushbox_core.errors import DependencyDown
from pushbox_core.names import Names

log = logging.getLogger(__name__)

RELEASE_WAIT_S = 2.0  # how long to wait for another process to let go of held messages

Counts = dict[tuple[str, str], int]  # (notification id, counter) -> how many


@dataclass(frozen=True)
class SyncRequest:
    ack: tuple[str, ...] = ()
    max: int = 100
    wait_s: float = 0.0


@dataclass(frozen=True)
class Delivery:
    """What reading a device's mailbox needs; built once per process (bootstrap)."""

    mailbox: Mailbox
    signals: Signals
    listener: Listener
    holders: Holders
    connections: Connections
    keepalive: KeepAlive

    @property
    def instance(self) -> str:
        return self.listener.instance


def sync_device(
    session: Session, req: SyncRequest, *, d: Delivery, count: Callable[[Counts], None]
) -> list[Taken]:
    """Ack, then return up to `max` messages from the head of the device's queue; with
    `wait`, hold the request until something arrives or the wait runs out. What it
    acks, collapses or expires goes to `count` as soon as the broker is told (even if
    the sync then fails)."""
    device_id = session.device_id

    def settled(ids_by_counter: dict[str, list[str]]) -> None:
        counts = counts_of(ids_by_counter)
        if counts:
            count(counts)

    mine = claim(device_id, d=d)
    woken = None
    if req.wait_s > 0:
        woken = d.listener.waiter(Names.wake_device(device_id), Names.wake_app(session.app_id))
    deadline = time.monotonic() + req.wait_s
    mark = None
    started, waited = time.perf_counter(), 0.0
    try:
        messages = d.mailbox.sync(device_id, list(req.ack), req.max, settled)
        while woken is not None and not messages and req.max > 0:
            left = deadline - time.monotonic()
            if mark is None and left > 0:  # waiting: no platform wake while it lasts
                mark = d.connections.connect(device_id, left)
            if left <= 0:
                break
            wait_started = time.perf_counter()
            with metrics.waiting():
                arrived = woken.wait(left)
            waited += time.perf_counter() - wait_started
            if not arrived:
                break
            woken.clear()
            current = d.holders.current(device_id)
            if current is not None and current != mine:
                break  # a newer sync or stream of the device (here or elsewhere): stale
            messages = d.mailbox.sync(device_id, [], req.max, settled)
        metrics.SYNC_SECONDS.observe(time.perf_counter() - started - waited)
        return messages
    finally:
        if woken is not None:
            d.listener.forget(woken)
        if mark is not None:
            _disconnect(device_id, mark, d=d)


def _disconnect(device_id: str, mark: str, *, d: Delivery) -> None:
    try:
        d.connections.disconnect(device_id, mark)
    except DependencyDown:  # the mark expires on its own, a few seconds later
        log.warning("device %s: could not clear its connected mark", device_id)


def claim(device_id: str, *, d: Delivery) -> str:
    """Become the process that holds the device's messages: if another one held them,
    ask it to let go, and wait until it did (reading before would return newer
    messages first and miss the acks). Returns the claim (see holders.py)."""
    d.listener.listen()  # this process may hold messages: it must hear requests to let go
    mine, previous = d.holders.claim(device_id, d.instance)
    if previous is None or previous == d.instance:
        return mine
    released = d.listener.waiter(Names.released(device_id))
    try:
        if d.signals.ask_release(previous, device_id) and not released.wait(RELEASE_WAIT_S):
            raise DependencyDown("the device's previous API instance")
    finally:
        d.listener.forget(released)
    return mine


def forget_holder(device_id: str, *, d: Delivery) -> None:
    """After unregistering: whoever holds the device's messages drops them (they are gone
    with the queue), and a sync waiting for it ends."""
    holder = d.holders.drop(device_id)
    if holder == d.instance:
        d.mailbox.forget(device_id)
    elif holder is not None:
        d.signals.ask_release(holder, device_id)
    d.signals.wake_devices([device_id])


def counts_of(ids_by_counter: dict[str, list[str]]) -> Counts:
    """What a Tally adds: (notification id, counter) -> how many."""
    counts: Counts = {}
    for counter, ids in ids_by_counter.items():
        for notification_id in ids:
            counts[(notification_id, counter)] = counts.get((notification_id, counter), 0) + 1
    return counts
