"""Another service hearing Pushbox's events: a queue of its own bound to the
`<namespace>.events` topic exchange (`python -m sdk_stub events` prints what arrives).

A real service would declare a durable, named queue (it keeps the events while the
service is down); this one is exclusive and goes away with its connection."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import pika

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class EventListener:
    def __init__(self, amqp_url: str, namespace: str, keys: Iterable[str] = ("#",)):
        """`keys`: binding keys, e.g. `#` (everything), `device.*`, `notification.acked`."""
        self.exchange = f"{namespace}.events"
        self._conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self._ch = self._conn.channel()
        # the same declaration Pushbox makes (durable topic): whoever comes first
        self._ch.exchange_declare(self.exchange, "topic", durable=True)
        self.queue = self._ch.queue_declare("", exclusive=True).method.queue
        for key in keys:
            self._ch.queue_bind(self.queue, self.exchange, key)

    def take(self) -> list[dict]:
        """Every event waiting now, in arrival order."""
        got: list[dict] = []
        while True:
            method, _props, body = self._ch.basic_get(self.queue, auto_ack=True)
            if method is None:
                return got
            got.append(json.loads(body))

    def run(self, on_event: Callable[[str, dict], None]) -> None:
        """Call on_event(routing key, body) for each event as it arrives, until
        interrupted."""

        def deliver(_ch, method, _props, body: bytes) -> None:
            on_event(method.routing_key, json.loads(body))

        self._ch.basic_consume(self.queue, deliver, auto_ack=True)
        self._ch.start_consuming()

    def close(self) -> None:
        if self._conn.is_open:
            self._conn.close()
