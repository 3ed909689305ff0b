"""The dispatcher worker (`python -m dispatcher`): consumes order events and turns
them into notifications, and counts what the dead-letter queue receives.

One consuming connection with a prefetch; messages are acked after the work. A lost
broker or database is logged, waited out and reconnected; the unacked message comes
back and, because an event's notification id is derived from the event, is not sent
twice."""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError

from dispatcher import order_events, services
from dispatcher.bootstrap import bootstrap
from dispatcher.notifications import Notifications
from dispatcher.services import Dispatch
from pushbox_core import metrics
from pushbox_core.errors import DependencyDown, NotFound, PushboxError
from pushbox_core.rabbit import Nodes
from pushbox_core.settings import Settings

log = logging.getLogger("dispatcher")

PREFETCH = 100
RECONNECT_MAX_S = 10.0
DEATH_REASONS = {"expired": "expired", "maxlen": "dropped"}


@dataclass
class Worker:
    settings: Settings
    dispatch: Dispatch
    notifications: Notifications
    stopping: bool = False
    handled: Counter = field(default_factory=Counter)
    _nodes: Nodes = field(init=False)

    def __post_init__(self) -> None:
        self._nodes = Nodes(
            self.settings.broker_urls, name="pushbox-dispatcher-consumer", heartbeat_s=60
        )

    def declare(self, ch: BlockingChannel) -> None:
        names = self.dispatch.names
        self.dispatch.topology.ensure_globals()
        ch.exchange_declare(self.settings.orders_exchange, "topic", durable=True)
        ch.exchange_declare(names.invalid_order_events, "fanout", durable=True)
        own = self.dispatch.topology.declare_own_queue  # quorum on a cluster
        own(names.invalid_order_events)
        ch.queue_bind(names.invalid_order_events, names.invalid_order_events)
        own(names.order_events_queue, **{"x-dead-letter-exchange": names.invalid_order_events})
        ch.queue_bind(names.order_events_queue, self.settings.orders_exchange, "order.*")

    def on_order_event(self, ch: BlockingChannel, method, props, body: bytes) -> None:
        try:
            event = order_events.parse(body)
            sent = services.notify(
                event.app_id,
                event.target(),
                event.content(),
                d=self.dispatch,
                message_id=event.message_id,
            )
        except order_events.MalformedEvent as e:
            log.warning("malformed order event, dead-lettered: %s", e)
            ch.basic_reject(method.delivery_tag, requeue=False)
            self.handled["order_malformed"] += 1
            return
        except NotFound as e:
            log.info("order event for %s: nobody to tell (%s)", method.routing_key, e)
            ch.basic_ack(method.delivery_tag)
            self.handled["order_no_device"] += 1
            return
        except DependencyDown:
            raise  # reconnect; the event comes back
        except PushboxError as e:
            log.warning("order event not sendable, dead-lettered: %s", e)
            ch.basic_reject(method.delivery_tag, requeue=False)
            self.handled["order_malformed"] += 1
            return
        log.info("order %s -> notification %s to %d devices", event.order_id, sent.id, sent.targets)
        ch.basic_ack(method.delivery_tag)
        self.handled["order_sent"] += 1

    def on_dead_letter(self, ch: BlockingChannel, method, props, body: bytes) -> None:
        """Count expired and dropped messages against their notification."""
        deaths = (props.headers or {}).get("x-death") or []
        reason = deaths[0].get("reason") if deaths else None
        if isinstance(reason, bytes):
            reason = reason.decode()
        counter = DEATH_REASONS.get(str(reason))
        if counter and props.message_id:
            self.notifications.count({(props.message_id, counter): 1})
        ch.basic_ack(method.delivery_tag)
        self.handled[f"dead_{counter or 'other'}"] += 1

    def run_once(self) -> None:
        """Consume until stopped or until the broker or database goes away."""
        conn = self._nodes.connect()
        try:
            ch = conn.channel()
            self.declare(ch)
            ch.basic_qos(prefetch_count=PREFETCH)
            names = self.dispatch.names
            ch.basic_consume(names.order_events_queue, self.on_order_event)
            ch.basic_consume(names.dead_letter_queue, self.on_dead_letter)
            log.info("consuming %s and %s", names.order_events_queue, names.dead_letter_queue)
            while not self.stopping:
                conn.process_data_events(time_limit=0.5)
        finally:
            if conn.is_open:
                conn.close()

    def run(self) -> None:
        delay = 0.5
        while not self.stopping:
            try:
                self.run_once()
            except (AMQPError, DependencyDown, OSError) as e:
                metrics.dependency_failed(e if isinstance(e, DependencyDown) else "rabbitmq")
                log.warning("dispatcher lost a dependency (%s); retrying in %.1fs", e, delay)
                time.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            delay = 0.5

    def stop(self, *_: object) -> None:
        self.stopping = True


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    pushbox = bootstrap(Settings.from_env(), role="dispatcher")
    worker = Worker(pushbox.settings, pushbox.dispatch, pushbox.notifications)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run()
    pushbox.close()  # the wake-ups still waiting go out
    log.info("stopped: %s", dict(worker.handled))
