"""One publishing connection per process, shared by every thread, with many publisher
confirms in flight: each caller waits for its own message's confirm, not for the
messages before it.

pika's BlockingChannel waits for each confirm before its next publish, so concurrent
sends on pooled channels cost one connection, one write and one confirm frame each,
and the broker wakes up for every one of them. Here an I/O thread owns one
SelectConnection (pika's asynchronous adapter, the way pika's docs publish fast with
confirms); callers hand it their message (`add_callback_threadsafe`) and wait on a
Future. What arrives while the connection is busy goes out in one write, and the
broker confirms runs of it with one `multiple` ack. A mandatory message that reaches
no queue comes back (Basic.Return) before its ack and fails only its own caller
(NotDelivered). A nack fails only its own caller too, with DeliveryUnknown: a queue
could not take it, another one it was routed to may have, and a quorum queue nacks
while it has no leader it knows of (for a second or more after a node dies, measured
on a 3-node cluster: docs/delivery.md), so it is worth sending again under its id. A
lost connection fails every message in flight with BrokerUnavailable (the caller may
retry: every message carries its id, receivers dedupe). So does a channel the broker
closes: a publish to a missing exchange fails its own caller with NotDelivered, and
the other messages in flight on that connection with BrokerUnavailable (retried on a
new one, perhaps delivered twice).

A message that was written to the broker and neither confirmed nor refused (its
confirm timed out, or the connection died first) fails with DeliveryUnknown, a
BrokerUnavailable that says it may be delivered yet; one never written fails with a
plain BrokerUnavailable.

On a cluster the connection goes to the first node of the list that answers (pika's
connection workflow: one attempt a node, in order, the node of the last connection
first: rabbit.Nodes); when it dies, the next publish opens a new one the same way, so
it lands on a node that lives.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pika
from pika.adapters.select_connection import IOLoop, SelectConnection
from pika.exceptions import ChannelClosedByBroker

from pushbox_core.errors import BrokerUnavailable, DeliveryUnknown, NotDelivered, PushboxError
from pushbox_core.forks import ForkGuard

if TYPE_CHECKING:
    from pushbox_core.rabbit import Nodes

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 10.0  # connecting, on top of pika's own socket and stack timeouts
CONFIRM_TIMEOUT_S = 15.0  # a publish the broker neither confirms nor refuses by then


@dataclass
class _Publish:
    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties
    mandatory: bool
    future: Future = field(default_factory=Future)
    returned: bool = False
    written: bool = False  # handed to the connection: the broker may have it


def _settle(p: _Publish, error: PushboxError | None) -> None:
    # its caller may give up waiting (cancel) at any moment, even between these lines
    with contextlib.suppress(InvalidStateError):
        if error is None:
            p.future.set_result(None)
        else:
            p.future.set_exception(error)


class Publisher:
    def __init__(self, nodes: Nodes):
        """`nodes`: the broker's nodes, tried in turn for each new connection."""
        self._nodes = nodes
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._fork = ForkGuard()

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
        *,
        mandatory: bool,
    ) -> None:
        """Publish and wait for the broker's confirm. Raises NotDelivered (no queue
        took a mandatory message, or the exchange does not exist) or BrokerUnavailable
        (no connection, or no answer in time; DeliveryUnknown: it may be delivered,
        after a nack too)."""
        p = _Publish(exchange, routing_key, body, properties, mandatory)
        link = self._live_link()
        link.submit(p)
        _wait(link, p, time.monotonic() + CONFIRM_TIMEOUT_S)

    def publish_many(
        self, items: Sequence[tuple[str, str, bytes, pika.BasicProperties, bool]]
    ) -> list[PushboxError | None]:
        """Publish (exchange, routing key, body, properties, mandatory) items with all
        their confirms in flight at once, and wait for them: one outcome an item, in
        order, None when confirmed, else the error publish() would have raised for it
        alone (NotDelivered, DeliveryUnknown, BrokerUnavailable)."""
        batch = [_Publish(*item) for item in items]
        if not batch:
            return []
        try:
            link = self._live_link()
        except BrokerUnavailable as e:
            return [BrokerUnavailable(str(e.detail)) for _ in batch]
        for p in batch:
            try:
                link.submit(p)
            except BrokerUnavailable as e:  # the link closed meanwhile: never written
                _settle(p, e)
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        outcomes: list[PushboxError | None] = []
        for p in batch:
            try:
                p.future.result(max(0.0, deadline - time.monotonic()))
                outcomes.append(None)
            except FutureTimeout:
                written = link.give_up(p)
                if p.future.done() and not p.future.cancelled():
                    outcomes.append(p.future.exception(0))  # type: ignore[arg-type]
                elif written:
                    outcomes.append(DeliveryUnknown("the broker did not confirm in time"))
                else:
                    outcomes.append(BrokerUnavailable("the broker did not take it in time"))
            except PushboxError as e:
                outcomes.append(e)
        return outcomes

    def _live_link(self) -> _Link:
        with self._lock:
            if self._fork.forked():  # the parent's connection is not ours
                self._link = None
            link = self._link
            if link is None or link.closed:
                link = self._link = _Link(self._nodes)
        link.wait_open()
        return link

    def close(self) -> None:
        with self._lock:
            link, self._link = self._link, None
        if link is not None and self._fork.ours:
            link.close()


class _Link:
    """One connection's life: its I/O thread, its channel, what is in flight on it.
    Everything but submit(), wait_open() and close() runs on the I/O thread."""

    def __init__(self, nodes: Nodes):
        self._nodes = nodes
        self._ioloop = IOLoop()
        self._lock = threading.Lock()
        self._outbox: deque[_Publish] = deque()  # submitted, not yet written
        self._flush_scheduled = False
        self._unconfirmed: dict[int, _Publish] = {}  # by delivery tag, in tag order
        self._tag = 0
        self._opened = threading.Event()
        self._conn: _Connection | None = None
        self._channel = None
        self._channel_closed: BaseException | None = None
        self.closed = False
        self._error = "not connected"
        self._thread = threading.Thread(target=self._run, daemon=True, name="pushbox-publisher")
        self._thread.start()

    # ---- any thread
    def wait_open(self) -> None:
        if not self._opened.wait(OPEN_TIMEOUT_S):
            self.close()
            raise BrokerUnavailable("timed out connecting")
        if self.closed:
            raise BrokerUnavailable(self._error)

    def submit(self, p: _Publish) -> None:
        with self._lock:
            if self.closed:
                raise BrokerUnavailable(self._error)
            self._outbox.append(p)
            wake, self._flush_scheduled = not self._flush_scheduled, True
        if wake:
            # the I/O thread may close the connection meanwhile: it then fails p itself
            with contextlib.suppress(Exception):
                self._ioloop.add_callback_threadsafe(self._flush)

    def give_up(self, p: _Publish) -> bool:
        """The caller stops waiting for p; True when p was written (it may be
        delivered), False when it never will be."""
        with self._lock:  # against _flush deciding to write it meanwhile
            p.future.cancel()
            return p.written

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._ioloop.add_callback_threadsafe(self._shut)
        if self._thread is not threading.current_thread():
            self._thread.join(5)

    # ---- the I/O thread
    def _run(self) -> None:
        try:
            # each node in turn until one opens (pika's workflow), then _on_connected
            _Connection.create_connection(
                self._nodes.params(), self._on_connected, custom_ioloop=self._ioloop
            )
            self._ioloop.start()
        except Exception as e:  # noqa: BLE001 - a broken loop must still fail its callers
            log.warning("publisher connection failed: %s", e)
            self._fail_all(str(e) or type(e).__name__)
        finally:
            with contextlib.suppress(Exception):
                self._ioloop.close()

    def _on_connected(self, conn_or_error: SelectConnection | BaseException) -> None:
        if isinstance(conn_or_error, BaseException):  # no node answered
            self._fail_all(str(conn_or_error) or type(conn_or_error).__name__)
            self._ioloop.stop()
            return
        conn = self._conn = conn_or_error
        assert isinstance(conn, _Connection)
        self._nodes.opened(conn.params)
        conn.add_on_close_callback(self._on_closed)
        conn.channel(on_open_callback=self._on_channel)

    def _shut(self) -> None:
        if self._conn is not None:
            _close_connection(self._conn)  # _on_closed fails what waits, stops the loop
        else:  # still connecting
            self._fail_all("closed")
            self._ioloop.stop()

    def _on_channel(self, channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._opened.set())

    def _on_channel_closed(self, _channel, reason: BaseException) -> None:
        self._channel_closed = reason  # its publishes fail in _on_closed
        if self._conn is not None:
            _close_connection(self._conn)

    def _on_closed(self, conn: SelectConnection, reason: BaseException) -> None:
        self._fail_all(str(reason) or type(reason).__name__)
        conn.ioloop.stop()

    def _flush(self) -> None:
        with self._lock:
            if self._channel is None or not self._channel.is_open:
                return  # closing: _fail_all fails what waits in the outbox
            batch, self._outbox = list(self._outbox), deque()
            self._flush_scheduled = False
        assert self._conn is not None  # the channel is open
        with self._conn.corked():  # the whole flush in one write
            self._write(self._channel, batch)

    def _write(self, channel, batch: list[_Publish]) -> None:
        for i, p in enumerate(batch):
            with self._lock:  # against give_up()
                if p.future.cancelled():  # its caller gave up before it was written
                    continue
                p.written = True  # from here the broker may get it, even if this fails
            try:
                channel.basic_publish(
                    p.exchange, p.routing_key, p.body, p.properties, mandatory=p.mandatory
                )
            except Exception as e:  # noqa: BLE001 - the link is broken: fail what waits
                log.warning("publisher: %s", e)
                with self._lock:
                    self._outbox.extendleft(reversed(batch[i:]))  # _fail_all fails them
                if self._conn is not None:
                    _close_connection(self._conn)
                return
            self._tag += 1
            self._unconfirmed[self._tag] = p

    def _on_return(self, _channel, _method, properties, _body) -> None:
        # a return comes before the ack of its message, and at once: an earlier publish
        # of the same id whose caller gave up (and retried) was routed long before
        for p in self._unconfirmed.values():
            if (
                not p.returned
                and not p.future.cancelled()
                and p.properties.message_id == properties.message_id
            ):
                p.returned = True
                return

    def _on_confirm(self, frame) -> None:
        method = frame.method
        tags = [method.delivery_tag]
        if method.multiple:
            tags = []
            for tag in self._unconfirmed:
                if tag > method.delivery_tag:
                    break
                tags.append(tag)
        refused = isinstance(method, pika.spec.Basic.Nack)
        for tag in tags:
            p = self._unconfirmed.pop(tag, None)
            if p is None:
                continue
            if refused:
                _settle(p, DeliveryUnknown("the broker refused the message (a nack)"))
            elif p.returned:
                _settle(p, NotDelivered(f"no queue took the message for {p.routing_key}"))
            else:
                _settle(p, None)

    def _fail_all(self, why: str) -> None:
        with self._lock:
            self.closed = True
            self._error = why
            failed = [*self._unconfirmed.values(), *self._outbox]
            self._unconfirmed, self._outbox = {}, deque()
        self._opened.set()
        closed = self._channel_closed
        for p in failed:
            if (
                isinstance(closed, ChannelClosedByBroker)
                and closed.reply_code == 404
                and f"'{p.exchange}'" in closed.reply_text
            ):
                _settle(p, NotDelivered(f"exchange {p.exchange} does not exist"))
            elif p.written:
                _settle(p, DeliveryUnknown(why))
            else:
                _settle(p, BrokerUnavailable(why))


class _Connection(SelectConnection):
    """pika's SelectConnection, writing a message's frames (a publish has three) as one
    chunk instead of one each, and while `corked()`, every frame as one chunk when it
    ends: its transport sends each chunk with its own send(), and on this kind of
    machine a send() through loopback costs the API more CPU than building the frames
    (py-spy, docs/capacity.md). The broker reads what a flush wrote at once, too."""

    _held: list[bytes] | None = None

    @contextlib.contextmanager
    def corked(self) -> Iterator[None]:
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held and not self.is_closed:  # closed: pika drops frames written then too
                self._emit(held)

    def _output_marshaled_frames(self, marshaled_frames: Sequence[bytes]) -> None:
        if self._held is not None:
            self._held.extend(marshaled_frames)
        else:
            self._emit(marshaled_frames)

    def _emit(self, frames: Sequence[bytes]) -> None:
        for f in frames:  # pika's own counters, as its _output_marshaled_frames keeps them
            self.bytes_sent += len(f)
            self.frames_sent += 1
        self._adapter_emit_data(b"".join(frames))


def _wait(link: _Link, p: _Publish, deadline: float) -> None:
    """Until p is confirmed (returns) or refused (raises), at most until `deadline`."""
    try:
        p.future.result(max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        # not written yet: never will be; written: its confirm is ignored
        written = link.give_up(p)
        if p.future.done() and not p.future.cancelled():
            p.future.result(0)  # settled just now: its own outcome stands
            return
        if written:
            raise DeliveryUnknown("the broker did not confirm in time") from None
        raise BrokerUnavailable("the broker did not take the message in time") from None


def _close_connection(conn: SelectConnection) -> None:
    if conn.is_open:
        with contextlib.suppress(Exception):
            conn.close()
