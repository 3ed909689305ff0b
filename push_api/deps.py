"""The collaborators a request needs, built once per process by create_app."""

from __future__ import annotations

import functools
import os
import secrets
import socket
from dataclasses import dataclass

import redis
from flask import current_app

from device_registry import services as registry_services
from device_registry.mailbox import Mailbox
from device_registry.sessions import Holders, Sessions
from device_registry.store import Store
from device_registry.topology import Topology
from dispatcher.notifications import Notifications, Tally
from dispatcher.services import Dispatch
from push_api.idempotency import Idempotency
from push_api.rate_limits import RateLimiter
from pushbox_core.mysql import Database
from pushbox_core.names import Names
from pushbox_core.rabbit import Rabbit
from pushbox_core.redis_client import connect
from pushbox_core.settings import Settings
from pushbox_core.signals import Signals


@dataclass
class Deps:
    settings: Settings
    names: Names
    db: Database
    rabbit: Rabbit
    redis: redis.Redis
    store: Store
    topology: Topology
    sessions: Sessions
    limiter: RateLimiter
    notifications: Notifications
    tally: Tally
    dispatch: Dispatch
    idempotency: Idempotency
    signals: Signals
    mailbox: Mailbox
    holders: Holders

    @classmethod
    def build(cls, settings: Settings) -> Deps:
        names = Names(settings.namespace, settings.redis_prefix)
        db = Database.from_settings(settings)
        rabbit = Rabbit(settings.rabbitmq_url, name="pushbox-api")
        client = connect(settings.redis_url)
        store = Store(db)
        topology = Topology(rabbit, names, settings)
        notifications = Notifications(db)
        signals = Signals(client, names, instance_name())
        mailbox = Mailbox(settings.rabbitmq_url, names)
        signals.on_release = mailbox.release  # another process took over a device
        holders = Holders(client, names)
        mailbox.on_released = functools.partial(
            registry_services.let_go, signals=signals, holders=holders
        )
        return cls(
            settings=settings,
            names=names,
            db=db,
            rabbit=rabbit,
            redis=client,
            store=store,
            topology=topology,
            sessions=Sessions(client, names, settings.session_ttl_s),
            limiter=RateLimiter(client, names),
            notifications=notifications,
            tally=Tally(notifications),
            dispatch=Dispatch(store, notifications, rabbit, topology, names, signals),
            idempotency=Idempotency(client, names),
            signals=signals,
            mailbox=mailbox,
            holders=holders,
        )

    def close(self) -> None:
        self.tally.flush()
        self.signals.close()
        self.mailbox.close()
        self.limiter.close()
        self.store.close()
        self.notifications.close()
        self.rabbit.close()
        self.db.close()
        self.redis.close()


def instance_name() -> str:
    """This process, among every API process: for hand-overs between them."""
    base = os.environ.get("PUSH_INSTANCE_NAME") or socket.gethostname()
    return f"{base}:{os.getpid()}:{secrets.token_hex(3)}"


def deps() -> Deps:
    return current_app.extensions["pushbox"]
