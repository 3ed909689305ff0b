"""A device's broker topology: its two lane queues and their bindings.

Every declare here is idempotent, so a crashed registration can simply be run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from pushbox_core.errors import BrokerUnavailable
from pushbox_core.names import LANES, Names
from pushbox_core.rabbit import Rabbit
from pushbox_core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """What a device's bindings are made of."""

    device_id: str
    app_id: str
    user_id: str | None
    topics: tuple[str, ...]

    def direct_keys(self) -> set[str]:
        keys = {Names.device_key(self.device_id)}
        if self.user_id is not None:
            keys.add(Names.user_key(self.app_id, self.user_id))
        keys.update(Names.topic_key(self.app_id, t) for t in self.topics)
        return keys


class Topology:
    def __init__(self, rabbit: Rabbit, names: Names, settings: Settings):
        self.rabbit = rabbit
        self.names = names
        self.settings = settings
        self._declared_globals = False
        self._declared_apps: set[str] = set()

    def queue_arguments(self) -> dict:
        args = {
            "x-max-length": self.settings.device_backlog_max,
            "x-overflow": "drop-head",
            "x-dead-letter-exchange": self.names.dead_letter_exchange,
            "x-expires": self.settings.device_queue_expires_s * 1000,
        }
        if self.settings.queue_type == "quorum":
            args["x-queue-type"] = "quorum"
        else:
            args["x-queue-type"] = "classic"
            args["x-queue-version"] = 1  # v2 holds two files per queue: see BASELINE.md
        return args

    def own_queue_arguments(self, **more: object) -> dict:
        """For the queues Pushbox keeps for itself (not a device's: the dead letters,
        the wake jobs, the order events): quorum on a cluster, replicated like the
        lanes, so that no node's loss loses what they hold."""
        args: dict = dict(more)
        if self.settings.queue_type == "quorum":
            args["x-queue-type"] = "quorum"
        return args

    def forget_declared(self) -> None:
        """Declare exchanges again on next use (after the broker lost them)."""
        self._declared_globals = False
        self._declared_apps.clear()

    def ensure_globals(self) -> None:
        """The direct exchanges, the dead-letter exchange and queue, the wake queue."""
        if self._declared_globals:
            return
        names = self.names

        def declare(ch: BlockingChannel) -> None:
            for lane in LANES:
                ch.exchange_declare(names.direct_exchange(lane), "direct", durable=True)
            ch.exchange_declare(names.dead_letter_exchange, "fanout", durable=True)

        self.rabbit.call(declare)
        self.declare_own_queue(names.dead_letter_queue)
        self.rabbit.call(
            lambda ch: ch.queue_bind(names.dead_letter_queue, names.dead_letter_exchange)
        )
        self.declare_own_queue(names.wake_queue)
        self._declared_globals = True

    def declare_own_queue(self, queue: str, **more: object) -> None:
        """One of Pushbox's own queues (own_queue_arguments). One declared before with
        other arguments (another PUSH_QUEUE_TYPE: a queue cannot change its type in
        place) is kept as it is, with a warning, as a device's lanes are: refusing it
        would keep the workers from starting at all."""
        try:
            self.rabbit.call(
                lambda ch: ch.queue_declare(
                    queue, durable=True, arguments=self.own_queue_arguments(**more)
                )
            )
        except ChannelClosedByBroker as e:
            if e.reply_code != 406:
                raise BrokerUnavailable(f"{e.reply_code} {e.reply_text}") from None
            log.warning("queue %s kept as it was declared before: %s", queue, e.reply_text)
            self.rabbit.call(lambda ch: ch.queue_declare(queue, passive=True))

    def ensure_app(self, app_id: str) -> None:
        """The app's broadcast exchanges, one per lane."""
        self.ensure_globals()
        if app_id in self._declared_apps:
            return

        def declare(ch: BlockingChannel) -> None:
            for lane in LANES:
                ch.exchange_declare(
                    self.names.broadcast_exchange(app_id, lane), "fanout", durable=True
                )

        self.rabbit.call(declare)
        self._declared_apps.add(app_id)

    def ensure_device(self, route: Route) -> None:
        """Declare both lane queues and bind them; safe to repeat."""
        self.ensure_app(route.app_id)
        names, args = self.names, self.queue_arguments()
        keys = sorted(route.direct_keys())

        def declare(ch: BlockingChannel, passive: bool = False) -> None:
            for lane in LANES:
                queue = names.device_queue(route.device_id, lane)
                ch.queue_declare(queue, durable=True, arguments=args, passive=passive)
                ch.queue_bind(queue, names.broadcast_exchange(route.app_id, lane))
                for key in keys:
                    ch.queue_bind(queue, names.direct_exchange(lane), key)

        try:
            self.rabbit.call(declare)
        except ChannelClosedByBroker as e:
            if e.reply_code != 406:
                raise BrokerUnavailable(f"{e.reply_code} {e.reply_text}") from None
            # declared earlier with other settings (the backlog cap or expiry changed
            # since): keep the queue and its messages as they are, and bind it
            log.warning("device %s: queue kept with its old arguments", route.device_id)
            self.rabbit.call(lambda ch: declare(ch, passive=True))

    def unbind(self, device_id: str, keys: set[str]) -> None:
        if not keys:
            return
        names = self.names

        def change(ch: BlockingChannel) -> None:
            for lane in LANES:
                queue = names.device_queue(device_id, lane)
                for key in sorted(keys):
                    ch.queue_unbind(queue, names.direct_exchange(lane), key)

        try:
            self.rabbit.call(change)
        except ChannelClosedByBroker as e:  # e.g. the queue expired meanwhile
            raise BrokerUnavailable(f"{e.reply_code} {e.reply_text}") from None

    def delete_device(self, device_id: str) -> None:
        self.delete_queues(self.names.device_queues(device_id))

    def delete_queues(self, queues: list[str]) -> None:
        def delete(ch: BlockingChannel) -> None:
            for queue in queues:
                ch.queue_delete(queue)

        self.rabbit.call(delete)

    def depths(self, device_id: str) -> dict[str, int | None]:
        """Messages ready in each lane (high, normal); None for a lane that is gone."""
        return {
            lane: self.rabbit.queue_depth(self.names.device_queue(device_id, lane))
            for lane in LANES
        }

    def pending(self, device_id: str) -> int | None:
        """Messages waiting in both lanes; None when the queues are gone."""
        depths = self.depths(device_id).values()
        return None if None in depths else sum(d or 0 for d in depths)

    def exists(self, device_id: str) -> bool:
        return self.pending(device_id) is not None
