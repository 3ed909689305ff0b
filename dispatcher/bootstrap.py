"""The composition root: every collaborator a Pushbox process needs, built in one place
and wired at construction. The API (create_app), the dispatcher worker, the reconciler
and the tests all call `bootstrap`; a new worker process is a few lines on top of it.

Nothing connects here: connections open on first use (gunicorn may fork after this),
so a process pays only for what it uses.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

import redis

from device_registry.sessions import Sessions
from device_registry.store import Store
from device_registry.topology import Topology
from dispatcher.campaigns.caps import Caps
from dispatcher.campaigns.jobs import Jobs
from dispatcher.campaigns.services import Campaigns
from dispatcher.campaigns.store import CampaignStore
from dispatcher.delivery.connections import Connections
from dispatcher.delivery.holders import Holders
from dispatcher.delivery.keepalive import KeepAlive
from dispatcher.delivery.mailbox import Mailbox
from dispatcher.delivery.signals import Listener, Signals
from dispatcher.delivery.sync import Delivery
from dispatcher.delivery.tally import Tally
from dispatcher.grouped_sends import GroupedSends
from dispatcher.notifications import Notifications
from dispatcher.platforms.wake_jobs import WakeQueue
from dispatcher.services import Dispatch
from pushbox_core.events import Events
from pushbox_core.idempotency import Idempotency
from pushbox_core.mysql import Database
from pushbox_core.names import Names
from pushbox_core.rabbit import Rabbit
from pushbox_core.rate_limits import RateLimiter
from pushbox_core.redis_client import SharedPipeline, connect
from pushbox_core.sealing import Sealer
from pushbox_core.settings import Settings


@dataclass
class Pushbox:
    settings: Settings
    names: Names
    db: Database
    rabbit: Rabbit
    redis: redis.Redis
    store: Store
    topology: Topology
    sessions: Sessions
    notifications: Notifications
    tally: Tally
    events: Events
    dispatch: Dispatch
    sends: GroupedSends  # the API's single notifications, sent in groups
    delivery: Delivery
    limiter: RateLimiter
    idempotency: Idempotency
    sealer: Sealer | None  # None without PUSH_SECRETS_KEY: credentials can't be stored
    campaigns: Campaigns

    def close(self) -> None:
        """Stop reading mailboxes, send what waits in the batchers (the counts of the
        last acks too), then close every connection."""
        self.delivery.mailbox.close()
        self.sends.close()
        self.tally.flush()
        self.events.close()  # after the tally: its last acks go out as events
        self.delivery.signals.close()
        self.delivery.listener.close()
        self.delivery.keepalive.close()
        self.limiter.close()
        self.store.close()
        self.notifications.close()
        self.rabbit.close()
        self.db.close()
        self.redis.close()
        self.campaigns.jobs.close()


def bootstrap(settings: Settings, *, role: str = "api", instance: str | None = None) -> Pushbox:
    """`role` names the process's broker connections for operators (api, dispatcher,
    reconciler, ...); `instance` names it among every process for hand-overs."""
    names = Names(settings.namespace, settings.redis_prefix)
    db = Database.from_settings(settings)
    rabbit = Rabbit(settings.broker_urls, name=f"pushbox-{role}")
    client = connect(settings.redis_url)
    store = Store(db)
    topology = Topology(rabbit, names, settings)
    notifications = Notifications(db)
    signals = Signals(client, names)
    mailbox = Mailbox(settings.broker_urls, names, on_released=signals.released)
    listener = Listener(client, names, instance or instance_name(role), on_release=mailbox.release)
    events = Events(rabbit, names)
    caps = Caps(client, names)
    sessions = Sessions(client, names, settings.session_ttl_s)
    holders, connections = Holders(client, names), Connections(client, names)
    keepalive = KeepAlive(SharedPipeline(client, name="stream-keepalive"), names, sessions)
    dispatch = Dispatch(
        store,
        notifications,
        rabbit,
        topology,
        names,
        signals,
        WakeQueue(rabbit, names),
        events,
        caps,
    )
    return Pushbox(
        settings=settings,
        names=names,
        db=db,
        rabbit=rabbit,
        redis=client,
        store=store,
        topology=topology,
        sessions=sessions,
        notifications=notifications,
        tally=Tally(notifications, events),
        events=events,
        dispatch=dispatch,
        sends=GroupedSends(dispatch),
        delivery=Delivery(mailbox, signals, listener, holders, connections, keepalive),
        limiter=RateLimiter(client, names, settings),
        idempotency=Idempotency(client, names),
        sealer=Sealer(settings.secrets_key) if settings.secrets_key else None,
        campaigns=Campaigns(
            CampaignStore(db),
            Jobs(settings.redis_url, names),
            caps,
            store,
            dispatch,
            settings.campaign_chunk_size,
        ),
    )


def instance_name(role: str) -> str:
    """This process among every Pushbox process: for hand-overs between them."""
    base = os.environ.get("PUSH_INSTANCE_NAME") or f"{role}@{socket.gethostname()}"
    return f"{base}:{os.getpid()}:{secrets.token_hex(3)}"
