"""RabbitMQ connections: a small pool of channels for declares and probes, one user at
a time, and the process's publisher (pushbox_core.publisher) for messages.

pika's BlockingConnection is not thread-safe, so a channel is lent to one thread or
greenlet at a time and given back after. Connections are opened on first use, never at
import, and forgotten (not closed) in a forked child. Only Pushbox errors escape.

On a cluster (PUSH_RABBITMQ_URLS) every connection tries the nodes in the order given
and takes the first that answers; a connection that dies takes every idle pooled
channel with it (they most likely went to the same node), so the next use connects
afresh to a node that lives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from pika.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AMQPError,
    ChannelClosedByBroker,
)

from pushbox_core.errors import BrokerUnavailable, DeliveryUnknown, NotDelivered, PushboxError
from pushbox_core.forks import ForkGuard
from pushbox_core.publisher import Publisher

log = logging.getLogger(__name__)

T = TypeVar("T")
ATTEMPTS = 3
POOL_SIZE_MAX = 32
PERSISTENT = 2


# pika raises these for a broker it cannot reach or that stops answering; the connector
# exceptions (a handshake that times out) are not AMQPErrors
CONNECTION_ERRORS = (AMQPConnectionError, AMQPConnectorException, OSError)
IDLE_EVICT_S = 300.0  # well inside the heartbeat timeout: a pooled connection never goes stale


def backoff_s(attempt: int) -> float:
    return min(0.05 * 2**attempt, 1.0)


def connection_params(
    urls: str | Sequence[str], *, name: str, heartbeat_s: int
) -> list[pika.URLParameters]:
    """One set of parameters a node, in the order to try them (pika's connections take
    the list: one attempt each, in turn, no pause between). Fail fast on a node that is
    down or stuck; name the connection for operators."""
    found = []
    for url in [urls] if isinstance(urls, str) else urls:
        params = pika.URLParameters(url)
        params.connection_attempts = 1
        params.socket_timeout = 5
        params.stack_timeout = 10
        params.blocked_connection_timeout = 10
        params.heartbeat = heartbeat_s
        params.client_properties = {"connection_name": name}
        found.append(params)
    if not found:
        raise ValueError("no RabbitMQ URL")
    return found


class Nodes:
    """The broker's nodes as one kind of connection reaches them: its parameters for
    each, in the order to try them. The node any connection of this process to these
    nodes last opened on comes first, so that every later one (of any kind) goes
    straight to the node the others moved to: the dead one is tried last (on one
    machine it refuses at once; over a network it would cost each new connection a
    connect timeout), and a process keeps its connections together on one node."""

    _first: ClassVar[dict[tuple[str, ...], int]] = {}  # by the nodes' URLs: the process's

    def __init__(self, urls: str | Sequence[str], *, name: str, heartbeat_s: int):
        self._urls = (urls,) if isinstance(urls, str) else tuple(urls)
        self._all = connection_params(self._urls, name=name, heartbeat_s=heartbeat_s)

    def params(self) -> list[pika.URLParameters]:
        first = self._first.get(self._urls, 0)
        return self._all[first:] + self._all[:first]

    def opened(self, params: pika.connection.Parameters) -> None:
        """A connection opened with these parameters: try its node first from now on."""
        for i, p in enumerate(self._all):
            if (p.host, p.port) == (params.host, params.port):
                self._first[self._urls] = i
                return

    def connect(self) -> pika.BlockingConnection:
        conn = pika.BlockingConnection(self.params())
        self.opened(conn._impl.params)  # the node pika's workflow settled on
        return conn


@dataclass(frozen=True)
class Outgoing:
    """One persistent message for Rabbit.publish_many."""

    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    headers: dict | None = None
    expiration_ms: int | None = None
    mandatory: bool = True


def _properties(message_id: str, headers: dict | None, expiration_ms: int | None):
    return pika.BasicProperties(
        delivery_mode=PERSISTENT,
        content_type="application/json",
        message_id=message_id,
        timestamp=int(time.time()),
        headers=headers or {},
        expiration=str(expiration_ms) if expiration_ms is not None else None,
    )


class Rabbit:
    def __init__(self, urls: str | Sequence[str], *, name: str = "pushbox"):
        # pooled connections sit idle between uses, and nothing answers heartbeats then
        self._nodes = Nodes(urls, name=name, heartbeat_s=600)
        # publishes share one connection with many confirms in flight (its loop beats)
        self._publisher = Publisher(Nodes(urls, name=f"{name}-publisher", heartbeat_s=60))
        self._lock = threading.Lock()
        self._idle: list[tuple[BlockingChannel, float]] = []
        self._fork = ForkGuard()

    def _take(self) -> BlockingChannel:
        with self._lock:
            if self._fork.forked():  # the parent's sockets are not ours
                self._idle = []
            now = time.monotonic()
            while self._idle:
                ch, since = self._idle.pop()
                if ch.is_open and ch.connection.is_open and now - since < IDLE_EVICT_S:
                    return ch
                _close_quietly(ch)
        return self._nodes.connect().channel()

    def _give_back(self, ch: BlockingChannel) -> None:
        if not ch.is_open and ch.connection.is_open:  # closed by a 404: keep the connection
            try:
                ch = ch.connection.channel()
            except AMQPError:
                _close_quietly(ch)
                return
        with self._lock:
            if self._fork.ours and len(self._idle) < POOL_SIZE_MAX and ch.is_open:
                self._idle.append((ch, time.monotonic()))
                return
        _close_quietly(ch)

    @contextmanager
    def channel(self) -> Iterator[BlockingChannel]:
        """Lend a channel. Broker-closed channels raise AMQPChannelError
        (callers that expect 404s catch it); a lost connection raises BrokerUnavailable."""
        try:
            ch = self._take()
        except (AMQPError, *CONNECTION_ERRORS) as e:
            raise BrokerUnavailable(str(e) or type(e).__name__) from None
        try:
            yield ch
        except (AMQPChannelError, PushboxError):
            self._give_back(ch)
            raise
        except (AMQPError, *CONNECTION_ERRORS) as e:
            _close_quietly(ch)
            self._forget_idle()  # on the node that just went away, most likely
            raise BrokerUnavailable(str(e) or type(e).__name__) from None
        except BaseException:
            _close_quietly(ch)
            raise
        else:
            self._give_back(ch)

    def call(self, work: Callable[[BlockingChannel], T], attempts: int = ATTEMPTS) -> T:
        """Run idempotent work on a channel, retrying on a lost connection."""

        def on_a_channel() -> T:
            with self.channel() as ch:
                return work(ch)

        return _retrying(on_a_channel, attempts)

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: dict | None = None,
        expiration_ms: int | None = None,
        mandatory: bool = True,
    ) -> None:
        """Publish one persistent message and wait for the broker's confirm.

        A retry after a lost connection may deliver twice; every message carries its
        id, so receivers dedupe. Raises DeliveryUnknown when no attempt was confirmed
        and one of them may have been delivered."""
        props = _properties(message_id, headers, expiration_ms)
        unknown = False  # an attempt that may have been delivered

        def attempt() -> None:
            nonlocal unknown
            try:
                self._publisher.publish(exchange, routing_key, body, props, mandatory=mandatory)
            except DeliveryUnknown:
                unknown = True
                raise

        try:
            _retrying(attempt, ATTEMPTS)
        except (BrokerUnavailable, NotDelivered) as e:
            if unknown and not isinstance(e, DeliveryUnknown):  # the earlier one may be
                raise DeliveryUnknown(str(e)) from None
            raise

    def publish_many(self, messages: Sequence[Outgoing]) -> list[PushboxError | None]:
        """Publish many persistent messages with their confirms in flight together (one
        write, runs of them confirmed by one frame), for a batch or a campaign chunk.
        One outcome a message, in order: None once confirmed, else NotDelivered (no
        queue took it, or a nack), DeliveryUnknown (written, never confirmed: it may be
        delivered) or BrokerUnavailable (never written). Like publish(), what failed
        for want of a broker is tried again, up to ATTEMPTS times in all."""
        items = [
            (
                m.exchange,
                m.routing_key,
                m.body,
                _properties(m.message_id, m.headers, m.expiration_ms),
                m.mandatory,
            )
            for m in messages
        ]
        outcomes: list[PushboxError | None] = [None] * len(items)
        unknown = [False] * len(items)
        todo = list(range(len(items)))
        for attempt in range(1, ATTEMPTS + 1):
            results = self._publisher.publish_many([items[i] for i in todo])
            retry = []
            for i, error in zip(todo, results, strict=True):
                if isinstance(error, DeliveryUnknown):
                    unknown[i] = True
                if isinstance(error, BrokerUnavailable):
                    retry.append(i)
                if unknown[i] and isinstance(error, BrokerUnavailable | NotDelivered):
                    error = DeliveryUnknown(str(error))
                outcomes[i] = error
            if not retry or attempt == ATTEMPTS:
                break
            todo = retry
            time.sleep(backoff_s(attempt))
        return outcomes

    def queue_depth(self, queue: str) -> int | None:
        """Messages ready in `queue`, or None when it does not exist."""

        def probe(ch: BlockingChannel) -> int | None:
            try:
                return ch.queue_declare(queue, passive=True).method.message_count
            except ChannelClosedByBroker as e:
                if e.reply_code == 404:
                    return None
                raise BrokerUnavailable(str(e)) from None

        return self.call(probe)

    def _forget_idle(self) -> None:
        """Drop every idle pooled channel: a lost connection means a node went away,
        and the others on it are lost too, unnoticed until used (a retry would draw
        them one by one)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for ch, _ in idle:
            _close_quietly(ch)

    def close(self) -> None:
        self._publisher.close()
        self._forget_idle()


def _retrying(work: Callable[[], T], attempts: int) -> T:
    """Run work, again after a backoff when the broker was unavailable."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except BrokerUnavailable:
            if attempt == attempts:
                raise
            time.sleep(backoff_s(attempt))
    raise AssertionError("unreachable")


def _close_quietly(ch: BlockingChannel) -> None:
    try:
        if ch.connection.is_open:
            ch.connection.close()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail any way
        log.debug("closing a broken RabbitMQ connection failed", exc_info=True)
