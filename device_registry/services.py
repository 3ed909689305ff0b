"""What the registry does: create apps, register devices, open sessions, change and
remove devices. Plain functions taking their collaborators; views and workers call them.

Ordering rule: MySQL says what exists, and a device becomes visible (status active)
only once its queues and bindings exist. Broker work never runs inside a MySQL
transaction (declares are slow), and every broker step is idempotent, so a crash
between the two leaves something the next attempt, or the reconciler, finishes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from device_registry.sessions import Presence, Session, Sessions
from device_registry.store import DEVICE_FIELDS, App, Device, Store
from device_registry.topology import Route, Topology
from pushbox_core.errors import DeviceNotFound, PushboxError, Unauthorized
from pushbox_core.events import Events
from pushbox_core.keys import hash_key, new_key, same_key

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
    connected: bool = False  # waiting in a sync or streaming (dispatcher/delivery)


def add_app(name: str, *, store: Store) -> NewApp:
    app_key, server_key = new_key("ak_"), new_key("sk_")
    app = store.insert_app(name, hash_key(app_key), hash_key(server_key))
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
    app: App,
    req: RegistrationRequest,
    *,
    store: Store,
    topology: Topology,
    sessions: Sessions,
    events: Events,
) -> Registration:
    """Register (or register again) an installation; `device.registered` tells the
    other services."""
    reg = _register(app, req, store=store, topology=topology, sessions=sessions)
    events.device_registered(app.id, reg.device.id, reg.device.installation_id, again=reg.existed)
    return reg


def _register(
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
            store.save_device(device_id, _push_token(req.values), None, status="active")
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
        values["push_token"] = req.values.get("push_token")
        topics = tuple(req.topics or ())
    else:
        values = {f: req.values.get(f, getattr(old, f)) for f in DEVICE_FIELDS}
        values.update(_push_token(req.values))
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


def _push_token(values: dict) -> dict:
    """The push token a request sent (a PushToken, or None to remove it), if it did."""
    return {"push_token": values["push_token"]} if "push_token" in values else {}


def open_session(device_id: str, secret: str, *, store: Store, sessions: Sessions) -> str:
    device = store.device(device_id)
    if device is None or not device.active or not same_key(hash_key(secret), device.secret_hash):
        raise Unauthorized("unknown device or wrong device secret")
    token = sessions.open(device.id, device.app_id)
    store.touch(device.id)
    sessions.seen(device.id)
    return token


def device_seen(device_id: str, *, sessions: Sessions, store: Store) -> None:
    """The device is active now: its presence at once; its activity in MySQL (which a
    campaign's `seen_within_s` reads) at most once per ACTIVITY_WRITE_S."""
    if sessions.seen(device_id):
        store.touch(device_id)


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
    session: Session, *, store: Store, topology: Topology, sessions: Sessions, events: Events
) -> None:
    """Row first (the device is gone from then on), then its queues, then its sessions;
    then `device.deleted`. When the broker fails, the row goes back to active and the
    caller retries; if even that fails, the reconciler deletes the queues of deleted
    rows."""
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
    events.device_deleted(device.app_id, device.id)


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
