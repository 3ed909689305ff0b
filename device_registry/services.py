"""What the registry does: create apps, register devices, open sessions, change and
remove devices. Plain functions taking their collaborators; views and workers call them.

Ordering rule: MySQL says what exists, and a device becomes visible (status active)
only once its queues and bindings exist. Broker work never runs inside a MySQL
transaction (declares are slow), and every broker step is idempotent, so a crash
between the two leaves something the next attempt, or the reconciler, finishes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from device_registry.mailbox import Mailbox, Taken
from device_registry.sessions import Holders, Presence, Session, Sessions
from device_registry.store import DEVICE_FIELDS, App, Device, Store
from device_registry.topology import Route, Topology
from pushbox_core.errors import DependencyDown, DeviceNotFound, PushboxError, Unauthorized
from pushbox_core.keys import hash_key, new_key, same_key
from pushbox_core.signals import Signals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewApp:
    app: App
    app_key: str
    server_key: str


@dataclass(frozen=True)
class RegistrationRequest:
    installation_id: str
    values: dict  # only the fields the caller sent, among DEVICE_FIELDS
    topics: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DeviceChanges:
    values: dict = field(default_factory=dict)  # only the fields sent
    topics: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Registration:
    device: Device
    secret: str
    existed: bool


@dataclass(frozen=True)
class DeviceView:
    device: Device
    pending: int
    presence: Presence


def create_app(name: str, *, store: Store) -> NewApp:
    app_key, server_key = new_key("ak_"), new_key("sk_")
    app = store.create_app(name, hash_key(app_key), hash_key(server_key))
    return NewApp(app, app_key, server_key)


def app_for_app_key(app_key: str, *, store: Store) -> App:
    app = store.app_by_app_key(hash_key(app_key)) if app_key else None
    if app is None:
        raise Unauthorized("unknown app key (X-App-Key)")
    return app


def app_for_server_key(server_key: str, *, store: Store) -> App | None:
    return store.app_by_server_key(hash_key(server_key))


def route_of(device: Device) -> Route:
    return Route(device.id, device.app_id, device.user_id, tuple(device.topics))


def register_device(
    app: App, req: RegistrationRequest, *, store: Store, topology: Topology, sessions: Sessions
) -> Registration:
    secret = new_key("ds_")
    existing = store.device_by_installation(app.id, req.installation_id)
    if existing is None:
        values = {f: req.values.get(f) for f in DEVICE_FIELDS}
        topics = list(req.topics or ())
        device_id = store.insert_pending_device(
            app.id, req.installation_id, hash_key(secret), values, topics
        )
        if device_id is None:  # a concurrent registration of this installation won
            existing = store.device_by_installation(app.id, req.installation_id)
            assert existing is not None
        else:
            topology.ensure_device(Route(device_id, app.id, values["user_id"], tuple(topics)))
            store.save_device(device_id, {}, None, status="active")
            return Registration(_must(store, device_id), secret, existed=False)
    return _register_again(existing, req, secret, store=store, topology=topology, sessions=sessions)


def _register_again(
    old: Device, req: RegistrationRequest, secret: str, *, store, topology, sessions
) -> Registration:
    """The installation has a row: keep its id and queue, take the new secret.

    A pending or deleted row starts over from the request alone; an active or stale
    one keeps the fields the request leaves out."""
    starts_over = old.status in ("pending", "deleted")
    if starts_over:
        values = {f: req.values.get(f) for f in DEVICE_FIELDS}
        topics = tuple(req.topics or ())
    else:
        values = {f: req.values.get(f, getattr(old, f)) for f in DEVICE_FIELDS}
        topics = old.topics if req.topics is None else tuple(req.topics)
    new_route = Route(old.id, old.app_id, values["user_id"], topics)
    topology.ensure_device(new_route)  # re-creates expired queues, adds new bindings
    try:
        store.save_device(
            old.id, values, list(topics), status="active", secret_hash=hash_key(secret)
        )
    except PushboxError:
        _undo_bindings(topology, old.id, new_route.direct_keys() - route_of(old).direct_keys())
        raise
    if not starts_over:
        _drop_bindings(topology, old.id, route_of(old).direct_keys() - new_route.direct_keys())
    sessions.revoke_all(old.id)  # whoever registered again holds the only secret now
    return Registration(_must(store, old.id), secret, existed=not starts_over)


def open_session(device_id: str, secret: str, *, store: Store, sessions: Sessions) -> str:
    device = store.device(device_id)
    if device is None or not device.active or not same_key(hash_key(secret), device.secret_hash):
        raise Unauthorized("unknown device or wrong device secret")
    token = sessions.open(device.id, device.app_id)
    store.touch(device.id)
    sessions.seen(device.id)
    return token


def authenticate_device(token: str, *, sessions: Sessions) -> Session:
    session = sessions.lookup(token) if token else None
    if session is None:
        raise Unauthorized("unknown or expired session token")
    return session


def view_device(
    session: Session, *, store: Store, topology: Topology, sessions: Sessions, held: int = 0
) -> DeviceView:
    """`held`: messages this process gave the device and holds unacked (see mailbox);
    they are pending too, though no longer ready in the queue."""
    device = _active(store, session)
    pending = (topology.pending(device.id) or 0) + held
    return DeviceView(device, pending, sessions.presence(device.id))


def update_device(
    session: Session,
    changes: DeviceChanges,
    *,
    store: Store,
    topology: Topology,
    sessions: Sessions,
) -> DeviceView:
    old = _active(store, session)
    values = {f: changes.values.get(f, getattr(old, f)) for f in DEVICE_FIELDS}
    topics = old.topics if changes.topics is None else tuple(changes.topics)
    new_route = Route(old.id, old.app_id, values["user_id"], topics)
    added = new_route.direct_keys() - route_of(old).direct_keys()
    removed = route_of(old).direct_keys() - new_route.direct_keys()
    topology.ensure_device(new_route)  # binds what is added; re-creates expired queues
    try:
        store.save_device(old.id, changes.values, None if changes.topics is None else list(topics))
    except PushboxError:
        _undo_bindings(topology, old.id, added)
        raise
    _drop_bindings(topology, old.id, removed)
    return view_device(session, store=store, topology=topology, sessions=sessions)


def delete_device(
    session: Session, *, store: Store, topology: Topology, sessions: Sessions
) -> None:
    """Row first (the device is gone from then on), then its queues, then its sessions.
    When the broker fails, the row goes back to active and the caller retries; if even
    that fails, the reconciler deletes the queues of deleted rows."""
    device = _active(store, session)
    store.set_status(device.id, "deleted")
    try:
        topology.delete_device(device.id)
    except PushboxError:
        try:
            store.set_status(device.id, device.status)
        except PushboxError:
            log.warning("device %s: deleted row, queues left for the reconciler", device.id)
        raise
    sessions.revoke_all(device.id)


def _active(store: Store, session: Session) -> Device:
    device = store.device(session.device_id)
    if device is None or not device.active:
        raise DeviceNotFound("this device is no longer registered")
    return device


def _must(store: Store, device_id: str) -> Device:
    device = store.device(device_id)
    assert device is not None
    return device


def _undo_bindings(topology: Topology, device_id: str, keys: set[str]) -> None:
    try:
        topology.unbind(device_id, keys)
    except PushboxError:
        log.warning("device %s: could not undo bindings %s", device_id, sorted(keys))


def _drop_bindings(topology: Topology, device_id: str, keys: set[str]) -> None:
    """Bindings the device no longer wants. Failing here leaves an extra binding (the
    device may get a message meant for its old user or topic), never a missing one."""
    try:
        topology.unbind(device_id, keys)
    except PushboxError:
        log.warning("device %s: could not drop bindings %s", device_id, sorted(keys))


@dataclass(frozen=True)
class SyncRequest:
    ack: tuple[str, ...] = ()
    max: int = 100
    wait_s: float = 0.0


RELEASE_WAIT_S = 2.0  # how long to wait for another process to let go of held messages


def sync_device(
    session: Session,
    req: SyncRequest,
    *,
    mailbox: Mailbox,
    signals: Signals,
    holders: Holders,
    count: Callable[[dict[tuple[str, str], int]], None],
) -> list[Taken]:
    """Ack, then return up to `max` messages from the head of the device's queue; with
    `wait`, hold the request until something arrives or the wait runs out. What it
    acks, collapses or expires goes to `count` as soon as the broker is told (even if
    the sync then fails)."""
    device_id = session.device_id

    def settled(ids_by_counter: dict[str, list[str]]) -> None:
        counts = _counts(ids_by_counter)
        if counts:
            count(counts)

    signals.listen()  # this process may hold messages: it must hear requests to let go
    previous = holders.claim(device_id, signals.instance)
    unreturned: set[str] = set()
    if previous is not None and previous != signals.instance:
        _take_over(device_id, previous, signals=signals)
        unreturned = holders.take_unreturned(device_id, previous)
    woken = signals.waiter(f"d:{device_id}", f"a:{session.app_id}") if req.wait_s > 0 else None
    deadline = time.monotonic() + req.wait_s
    try:
        messages = mailbox.sync(device_id, list(req.ack), req.max, unreturned, settled)
        while woken is not None and not messages and req.max > 0:
            left = deadline - time.monotonic()
            if left <= 0 or not woken.wait(left):
                break
            woken.clear()
            holder = holders.current(device_id)
            if holder is not None and holder != signals.instance:
                break  # the device synced elsewhere meanwhile: this request is stale
            messages = mailbox.sync(device_id, [], req.max, on_settled=settled)
        return messages
    finally:
        if woken is not None:
            signals.forget(woken)


def _take_over(device_id: str, previous: str, *, signals: Signals) -> None:
    """Ask the process that holds the device's messages to let go, and wait until it
    did: reading before would return newer messages first and miss the acks."""
    released = signals.waiter(f"r:{device_id}")
    try:
        if signals.ask_release(previous, device_id) and not released.wait(RELEASE_WAIT_S):
            raise DependencyDown("the device's previous API instance")
    finally:
        signals.forget(released)


def let_go(device_id: str, unreturned: list[str], *, signals: Signals, holders: Holders) -> None:
    """This process let go of a device (another one serves it now): tell that one which
    messages the device never saw, then that it may read."""
    try:
        holders.note_unreturned(device_id, signals.instance, unreturned)
    except DependencyDown as e:  # it then calls them redelivered: a false alarm, no loss
        log.warning("device %s: could not note what was read ahead: %s", device_id, e)
    signals.released(device_id)


def forget_holder(device_id: str, *, mailbox: Mailbox, signals: Signals, holders: Holders) -> None:
    """After unregistering: whoever holds the device's messages drops them (they are gone
    with the queue), and a sync waiting for it ends."""
    holder = holders.drop(device_id)
    if holder == signals.instance:
        mailbox.forget(device_id)
    elif holder is not None:
        signals.ask_release(holder, device_id)
    signals.wake_devices([device_id])


def _counts(ids_by_counter: dict[str, list[str]]) -> dict[tuple[str, str], int]:
    """What a Tally adds: (notification id, counter) -> how many."""
    counts: dict[tuple[str, str], int] = {}
    for counter, ids in ids_by_counter.items():
        for notification_id in ids:
            counts[(notification_id, counter)] = counts.get((notification_id, counter), 0) + 1
    return counts
