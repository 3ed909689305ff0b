"""Reading a device's mailbox: what `POST /v1/device/sync` does on the broker.

The contract: acked ids leave the queue; up to `max` messages come back from the head,
high lane first; what was returned and not acked comes back later, marked
redelivered; nothing is lost if a process dies.

How, reading each message once: the process that answered a sync keeps holding what it
returned, unacked, on a channel of its own for that device, until the device's next
sync, which acks by delivery tag. A process that dies drops its connection and the
broker puts the held messages back. If a device's next sync lands on another process,
that one first asks the holder to let go (pushbox_core.signals), and the messages come
back redelivered; it then reads them again (the only case that reads twice).

pika's BlockingConnection is not thread-safe, so one thread (a greenlet under gevent)
owns each holding connection and runs every job on it, one at a time; a process has a
few such connections, and a device always uses the same one.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPError, ChannelClosedByBroker

from pushbox_core.errors import BrokerUnavailable, DeviceNotFound
from pushbox_core.names import LANES, Names
from pushbox_core.rabbit import CONNECTION_ERRORS, connection_params

log = logging.getLogger(__name__)
T = TypeVar("T")

HOLD_S = 60.0  # held messages go back to the queue after this long without a sync
HOLDINGS_MAX = 1_800  # channels on the holding connection (the broker allows 2,047)
DELIVERY_WAIT_S = 0.5  # at most, for deliveries the ready count promised
DELIVERY_GAP_S = 0.05  # deliveries that pause this long have ended (the rest expired)
JOB_TIMEOUT_S = 30.0


@dataclass
class Taken:
    """A message as delivered to us."""

    id: str
    lane: str
    tag: int
    redelivered: bool
    body: bytes
    collapse_key: str | None
    created_ms: int
    expires_ms: int | None

    def wire(self) -> bytes:
        """The stored JSON with `redelivered` added, without decoding it."""
        flag = b"true" if self.redelivered else b"false"
        return self.body[:-1] + b',"redelivered":' + flag + b"}"


@dataclass
class Holding:
    channel: BlockingChannel
    held: list[Taken] = field(default_factory=list)
    used_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class SyncResult:
    messages: list[Taken]
    acked: list[str]
    collapsed: list[str]
    expired: list[str]
    held: int  # messages this process now holds for the device (returned, not acked)


def _header(props: pika.BasicProperties, name: str) -> Any:
    value = (props.headers or {}).get(name)
    return value.decode() if isinstance(value, bytes) else value


def _int_header(props: pika.BasicProperties, name: str) -> int | None:
    """A number header; None when absent or not a number (a message published by
    hand must not break the device's sync)."""
    try:
        value = _header(props, name)
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


class Mailbox:
    """Several holding connections, each owned by one thread; a device always goes to
    the same one (by its id), so its holding stays on one channel. Several, so that one
    device's broker round trips don't make every other device wait."""

    def __init__(
        self, url: str, names: Names, *, connections: int = 4, name: str = "pushbox-mailbox"
    ):
        self._actors = [_Actor(url, names, name=f"{name}-{i}") for i in range(connections)]
        self.on_released: Callable[[str], None] | None = None
        for actor in self._actors:
            actor.on_released = self._released

    def _released(self, device_id: str) -> None:
        if self.on_released is not None:
            self.on_released(device_id)

    def _actor(self, device_id: str) -> _Actor:
        return self._actors[zlib.crc32(device_id.encode()) % len(self._actors)]

    def sync(self, device_id: str, ack: list[str], max_n: int) -> SyncResult:
        return self._actor(device_id).sync(device_id, ack, max_n)

    def release(self, device_id: str) -> None:
        """Put back what is held for this device (another process will serve it)."""
        self._actor(device_id).release(device_id)

    def forget(self, device_id: str) -> None:
        """The device is gone: drop its holding without telling anyone."""
        self._actor(device_id).forget(device_id)

    def held_count(self, device_id: str) -> int:
        return self._actor(device_id).held_count(device_id)

    def close(self) -> None:
        for actor in self._actors:
            actor.close()


class _Actor:
    def __init__(self, url: str, names: Names, *, name: str):
        self._params = connection_params(url, name=name, heartbeat_s=60)  # its loop beats
        self.names = names
        self._name = name
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._conn: BlockingConnection | None = None
        self._holdings: dict[str, Holding] = {}
        self.on_released: Callable[[str], None] | None = None

    # ---- called from other threads
    def sync(self, device_id: str, ack: list[str], max_n: int) -> SyncResult:
        return self._run(lambda: self._sync_or_let_go(device_id, set(ack), max_n))

    def release(self, device_id: str) -> None:
        self._submit(lambda: self._release(device_id))

    def forget(self, device_id: str) -> None:
        self._submit(lambda: self._let_go(device_id))

    def held_count(self, device_id: str) -> int:
        h = self._holdings.get(device_id)
        return len(h.held) if h else 0

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(5)

    # ---- the owning thread
    def _submit(self, fn: Callable[[], T]) -> Future:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True, name=self._name)
                self._thread.start()
        future: Future = Future()
        self._jobs.put((fn, future))
        return future

    def _run(self, fn: Callable[[], T]) -> T:
        try:
            return self._submit(fn).result(JOB_TIMEOUT_S)
        except FutureTimeout:
            raise BrokerUnavailable("the broker is too slow to answer") from None

    def _loop(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=1.0 if not self._holdings else 0.2)
            except queue.Empty:
                job = ()  # type: ignore[assignment]
            if job is None:
                self._drop_connection()
                return
            if job:
                fn, future = job
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except (AMQPError, *CONNECTION_ERRORS) as e:
                        self._drop_connection()
                        future.set_exception(BrokerUnavailable(str(e) or type(e).__name__))
                    except BaseException as e:  # noqa: BLE001 - handed to the caller
                        future.set_exception(e)
            try:
                if self._conn is not None and self._conn.is_open:
                    self._conn.process_data_events(0)  # heartbeats
                self._expire_holdings()
            except (AMQPError, *CONNECTION_ERRORS) as e:
                log.warning("mailbox connection lost: %s", e)
                self._drop_connection()

    def _connection(self) -> BlockingConnection:
        if self._conn is None or not self._conn.is_open:
            self._holdings.clear()  # the broker put them back when the old one died
            self._conn = pika.BlockingConnection(self._params)
        return self._conn

    def _drop_connection(self) -> None:
        self._holdings.clear()
        conn, self._conn = self._conn, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(AMQPError, *CONNECTION_ERRORS):
                conn.close()

    def _holding(self, device_id: str) -> Holding:
        h = self._holdings.get(device_id)
        if h is None or not h.channel.is_open:
            if len(self._holdings) >= HOLDINGS_MAX:  # let the longest idle one go
                oldest = min(self._holdings, key=lambda d: self._holdings[d].used_at)
                self._let_go(oldest)
            h = Holding(self._connection().channel())
            self._holdings[device_id] = h
        h.used_at = time.monotonic()
        return h

    def _let_go(self, device_id: str) -> None:
        h = self._holdings.pop(device_id, None)
        if h is not None and h.channel.is_open:
            with contextlib.suppress(AMQPError, *CONNECTION_ERRORS):
                h.channel.close()  # unacked deliveries go back to their queues

    def _release(self, device_id: str) -> None:
        self._let_go(device_id)
        if self.on_released is not None:
            self.on_released(device_id)

    def _expire_holdings(self) -> None:
        limit = time.monotonic() - HOLD_S
        for device_id in [d for d, h in self._holdings.items() if h.used_at < limit]:
            self._let_go(device_id)

    # ---- one sync, on the owning thread
    def _sync_or_let_go(self, device_id: str, ack: set[str], max_n: int) -> SyncResult:
        """A sync that fails half-way gives everything back (closing the channel puts
        every unacked delivery back in its queue), so no later ack can cover a message
        that was taken but never returned."""
        try:
            return self._sync(device_id, ack, max_n)
        except BaseException:
            self._let_go(device_id)
            raise

    def _sync(self, device_id: str, ack: set[str], max_n: int) -> SyncResult:
        h = self._holding(device_id)
        ch = h.channel
        outstanding = [t.tag for t in h.held]
        ack_tags: list[int] = []
        acked: list[str] = []

        def settle(t: Taken, into: list[str]) -> None:
            ack_tags.append(t.tag)
            into.append(t.id)

        held = []
        for t in h.held:
            if t.id in ack:
                settle(t, acked)
            else:
                t.redelivered = True  # it was given out before
                held.append(t)
        unknown = ack - set(acked)  # acked, but not held here: maybe let go by another
        lanes: dict[str, list[Taken]] = {}
        budget = max_n
        try:
            for lane in LANES:
                mine = [t for t in held if t.lane == lane]
                budget -= len(mine)
                want = max(budget, 0) + len(unknown)
                fresh: list[Taken] = []
                if want > 0:
                    for t in self._take(ch, device_id, lane, want):
                        outstanding.append(t.tag)
                        if t.id in unknown:
                            settle(t, acked)
                        else:
                            fresh.append(t)
                    keep = max(budget, 0)
                    for t in fresh[keep:]:  # taken for acks that were not there
                        ch.basic_nack(t.tag, requeue=True)
                        outstanding.remove(t.tag)
                    fresh = fresh[:keep]
                    budget -= len(fresh)
                lanes[lane] = mine + fresh
        except ChannelClosedByBroker as e:
            self._holdings.pop(device_id, None)
            if e.reply_code == 404:
                raise DeviceNotFound("this device is no longer registered") from None
            raise BrokerUnavailable(str(e)) from None

        now_ms = int(time.time() * 1000)
        expired: list[str] = []
        collapsed: list[str] = []
        live = []
        for t in lanes[LANES[0]] + lanes[LANES[1]]:
            if t.expires_ms is not None and t.expires_ms <= now_ms:
                settle(t, expired)
            else:
                live.append(t)
        newest: dict[str, Taken] = {}
        for t in live:
            if t.collapse_key:
                seen = newest.get(t.collapse_key)
                if seen is None or (t.created_ms, t.tag) > (seen.created_ms, seen.tag):
                    newest[t.collapse_key] = t
        kept = []
        for t in live:
            given_before = t.redelivered  # the app has it already: not a collapse
            if t.collapse_key and newest[t.collapse_key] is not t and not given_before:
                settle(t, collapsed)
            else:
                kept.append(t)

        ack_by_tag(ch, outstanding, ack_tags)
        h.held = kept
        return SyncResult(kept[:max_n], acked, collapsed, expired, len(kept))

    def _take(self, ch: BlockingChannel, device_id: str, lane: str, want: int) -> list[Taken]:
        queue_name = self.names.device_queue(device_id, lane)
        ready = ch.queue_declare(queue_name, passive=True).method.message_count
        n = min(ready, want)
        if n == 0:
            return []
        got: list[Taken] = []

        def on_message(_ch, method, props, body) -> None:
            got.append(
                Taken(
                    id=props.message_id or "",
                    lane=lane,
                    tag=method.delivery_tag,
                    redelivered=bool(method.redelivered),
                    body=body,
                    collapse_key=_header(props, "collapse_key"),
                    created_ms=_int_header(props, "created_ms") or 0,
                    expires_ms=_int_header(props, "expires_ms"),
                )
            )

        ch.basic_qos(prefetch_count=n)
        consumer = ch.basic_consume(queue_name, on_message)
        # the ready count may include expired messages the broker drops as it delivers:
        # stop once deliveries pause, rather than wait for ones that will never come
        conn = ch.connection
        deadline = time.monotonic() + DELIVERY_WAIT_S
        quiet_until = time.monotonic() + DELIVERY_GAP_S
        while len(got) < n:
            now = time.monotonic()
            if now >= deadline or now >= quiet_until:
                break
            before = len(got)
            conn.process_data_events(time_limit=min(deadline, quiet_until) - now)
            if len(got) > before:
                quiet_until = time.monotonic() + DELIVERY_GAP_S
        ch.basic_cancel(consumer)  # deliveries not yet handed to on_message are nacked
        return got


def ack_by_tag(ch: BlockingChannel, outstanding: list[int], ack_tags: list[int]) -> None:
    """Ack by delivery tag: the longest fully-acked run of the oldest outstanding
    tags in one frame (multiple), the rest one by one."""
    if not ack_tags:
        return
    to_ack = set(ack_tags)
    prefix_end = None
    for tag in sorted(outstanding):
        if tag not in to_ack:
            break
        prefix_end = tag
    if prefix_end is not None:
        ch.basic_ack(prefix_end, multiple=True)
    for tag in ack_tags:
        if prefix_end is None or tag > prefix_end:
            ch.basic_ack(tag)
