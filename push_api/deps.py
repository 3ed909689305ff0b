"""The collaborators a request needs, built once per process by create_app."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from device_registry.sessions import Sessions
from device_registry.store import Store
from device_registry.topology import Topology
from dispatcher.notifications import Notifications
from dispatcher.services import Dispatch
from push_api.idempotency import Idempotency
from push_api.rate_limits import RateLimiter
from pushbox_core.mysql import Database
from pushbox_core.names import Names
from pushbox_core.rabbit import Rabbit
from pushbox_core.redis_client import connect
from pushbox_core.settings import Settings


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
    dispatch: Dispatch
    idempotency: Idempotency

    @classmethod
    def build(cls, settings: Settings) -> Deps:
        names = Names(settings.namespace, settings.redis_prefix)
        db = Database.from_settings(settings)
        rabbit = Rabbit(settings.rabbitmq_url, name="pushbox-api")
        client = connect(settings.redis_url)
        store = Store(db)
        topology = Topology(rabbit, names, settings)
        notifications = Notifications(db)
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
            dispatch=Dispatch(store, notifications, rabbit, topology, names),
            idempotency=Idempotency(client, names),
        )

    def close(self) -> None:
        self.rabbit.close()
        self.db.close()
        self.redis.close()


def deps() -> Deps:
    return current_app.extensions["pushbox"]
