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

Reading ahead, while a device drains a backlog: a sync that returns a full batch keeps
the device's consumers open, with room for one more batch, so the broker sends the
next batch while this one travels to the phone and the next sync comes back; the
owning thread decodes it meanwhile, and the next sync acks and answers from memory.
What was read ahead and not returned is held like the rest (unacked, back to the queue
if the process dies or lets go, then flagged redelivered by the broker: a false alarm
the SDK's dedupe absorbs; see docs/delivery.md). A sync that finds the device caught up
closes the consumers; a lane with a few messages or none is read by basic.get and
never gets one; and an actor reads ahead for at most READING_MAX devices at a time,
which bounds the memory it holds.

What to return, ack or drop is decided by the pure functions of `decisions.py`; this
module does it on the broker.

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
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPError, ChannelClosedByBroker

from dispatcher.delivery.decisions import (
    Settlement,
    Taken,
    ack_frames,
    decide,
    split_held,
    take_fresh,
)
from pushbox_core.errors import BrokerUnavailable, DeviceNotFound
from pushbox_core.names import LANES, Names
from pushbox_core.rabbit import CONNECTION_ERRORS, Nodes

log = logging.getLogger(__name__)
T = TypeVar("T")

HOLD_S = 60.0  # held messages go back to the queue after this long without a sync
HOLDINGS_MAX = 1_800  # channels on the holding connection (the broker allows 2,047)
DELIVERY_WAIT_S = 0.5  # at most, for deliveries the ready count promised
DELIVERY_GAP_S = 0.05  # deliveries that pause this long have ended (the rest expired)
JOB_TIMEOUT_S = 30.0
READ_WAIT_S = 1.0  # with consumers open, the owning thread waits on the broker this long
GETS_MAX = 4  # a lane with more to read than this gets a consumer instead of basic.gets
READING_MAX = 50  # devices an actor reads ahead for at once (each up to ~2 batches a lane)
TIDY_EVERY_S = 1.0  # held messages expired, broken streams ended, this often
SYNC_ATTEMPTS = 2  # a sync whose connection the broker closes is tried once more


@dataclass
class Holding:
    channel: BlockingChannel
    held: list[Taken] = field(default_factory=list)  # returned to the device, not acked
    # per lane, from the head of its queue: delivered to us, not returned yet
    ahead: dict[str, list[Taken]] = field(default_factory=lambda: {lane: [] for lane in LANES})
    consumers: dict[str, tuple[str, int]] = field(default_factory=dict)  # lane: (tag, window)
    stream: StreamLink | None = None  # set while a live stream consumes the device's lanes
    acked_floor: int = 0  # every delivery tag up to this one is acked (see decisions.ack_frames)
    acked_above: set[int] = field(default_factory=set)  # tags acked one by one past it
    used_at: float = field(default_factory=time.monotonic)

    def count(self) -> int:
        return len(self.held) + sum(len(a) for a in self.ahead.values())

    def ack(self, tags: list[int]) -> None:
        """Ack these delivery tags in as few frames as is safe (see decisions.ack_frames)."""
        if not tags:
            return
        frames = ack_frames(tags, self.acked_floor, self.acked_above)
        if frames.multiple_to:
            self.channel.basic_ack(frames.multiple_to, multiple=True)
        for tag in frames.singles:
            self.channel.basic_ack(tag)
        self.acked_floor, self.acked_above = frames.floor, frames.above


Settled = Callable[[dict[str, list[str]]], None]  # ids by counter: acked, collapsed, expired

# why a live stream ended, as its WebSocket close code (DESIGN "Live stream")
REPLACED = 4001  # a newer stream or sync of the device, on any instance
GONE = 4004  # the device was deleted (its queues with it)
BROKEN = 1011  # the broker connection was lost


class StreamLink(Protocol):
    """The stream's side of a consumer the mailbox holds for it (stream.py): told each
    delivery, and when the mailbox ended it (with a close code). Called on the
    mailbox's thread: must not block."""

    def deliver(self, t: Taken) -> None: ...

    def end(self, code: int) -> None: ...

    @property
    def ended(self) -> bool: ...


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
        self,
        urls: str | Sequence[str],
        names: Names,
        *,
        on_released: Callable[[str], None],
        connections: int = 4,
        name: str = "pushbox-mailbox",
    ):
        """`on_released(device_id)`: this process let go of a device's messages because
        another process asked (it may read them now)."""
        self._actors = [
            _Actor(urls, names, on_released=on_released, name=f"{name}-{i}")
            for i in range(connections)
        ]

    def _actor(self, device_id: str) -> _Actor:
        return self._actors[zlib.crc32(device_id.encode()) % len(self._actors)]

    def sync(
        self,
        device_id: str,
        ack: list[str],
        max_n: int,
        on_settled: Settled | None = None,
    ) -> list[Taken]:
        """`on_settled`: told the ids this sync acked, collapsed or expired (by counter)
        on the owning thread as soon as their acks are written, so that they count even
        if the sync then fails or its caller stopped waiting for it."""
        return self._actor(device_id).sync(device_id, ack, max_n, on_settled)

    def release(self, device_id: str) -> None:
        """Put back what is held for this device (another process will serve it)."""
        self._actor(device_id).release(device_id)

    def forget(self, device_id: str) -> None:
        """The device is gone: drop its holding without telling anyone."""
        self._actor(device_id).forget(device_id)

    def held_count(self, device_id: str) -> int:
        return self._actor(device_id).held_count(device_id)

    def open_stream(self, device_id: str, window: int, link: StreamLink) -> None:
        """Consume the device's lanes for a live stream, at most `window` unacked: each
        delivery goes to `link` as it lands. Ends whatever held the device here before
        (an older stream is told REPLACED). Raises DeviceNotFound, BrokerUnavailable."""
        self._actor(device_id).open_stream(device_id, window, link)

    def ack_stream(
        self, device_id: str, link: StreamLink, tags: list[int], then: Callable[[], None]
    ) -> None:
        """Ack these delivery tags of the stream's consumer (in the background); `then`
        runs once they are acked (not if the stream's channel is gone: they come back)."""
        self._actor(device_id).ack_stream(device_id, link, tags, then)

    def close_stream(self, device_id: str, link: StreamLink) -> None:
        """The stream ended: what it had in flight and unacked goes back to the queue."""
        self._actor(device_id).close_stream(device_id, link)

    def close(self) -> None:
        for actor in self._actors:
            actor.close()


class _Actor:
    def __init__(
        self,
        urls: str | Sequence[str],
        names: Names,
        *,
        on_released: Callable[[str], None],
        name: str,
    ):
        self._nodes = Nodes(urls, name=name, heartbeat_s=60)  # its loop beats
        self.names = names
        self._name = name
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._conn: BlockingConnection | None = None
        self._holdings: dict[str, Holding] = {}
        self._reading: set[str] = set()  # devices whose consumers are open (reading ahead)
        self._streams: set[str] = set()  # devices a live stream consumes
        self._tidied_at = 0.0
        self._on_released = on_released
        self._in_broker_wait = False  # the owning thread waits on the broker (see _wake)

    # ---- called from other threads
    def sync(
        self,
        device_id: str,
        ack: list[str],
        max_n: int,
        on_settled: Settled | None,
    ) -> list[Taken]:
        def job() -> list[Taken]:
            for attempt in range(1, SYNC_ATTEMPTS + 1):
                try:
                    return self._sync(device_id, set(ack), max_n, on_settled)
                except CONNECTION_ERRORS:
                    # the broker closed the connection (a cluster node went away: its
                    # own, or the leader of a queue read, "541 nodedown"): everything
                    # held on it went back to the queues; read again on a new one,
                    # where what this sync acked and was lost counts as let go
                    self._drop_connection()
                    if attempt == SYNC_ATTEMPTS:
                        raise
                except BaseException:
                    # a sync that fails half-way gives everything back (closing the
                    # channel puts every unacked delivery back in its queue), so no
                    # later ack can cover a message that was taken but never returned
                    self._let_go(device_id)
                    raise
            raise AssertionError("unreachable")

        return self._run(job)

    def release(self, device_id: str) -> None:
        self._submit(lambda: self._release(device_id))

    def forget(self, device_id: str) -> None:
        self._submit(lambda: self._let_go(device_id, GONE))

    def open_stream(self, device_id: str, window: int, link: StreamLink) -> None:
        self._run(lambda: self._open_stream(device_id, window, link))

    def ack_stream(
        self, device_id: str, link: StreamLink, tags: list[int], then: Callable[[], None]
    ) -> None:
        def job() -> None:
            h = self._holdings.get(device_id)
            if h is not None and h.stream is link and h.channel.is_open:
                h.ack(tags)
                then()

        self._submit(job)

    def close_stream(self, device_id: str, link: StreamLink) -> None:
        def job() -> None:
            h = self._holdings.get(device_id)
            if h is not None and h.stream is link:
                h.stream = None  # it ended itself: nothing to tell it
                self._let_go(device_id)

        self._submit(job)

    def held_count(self, device_id: str) -> int:
        h = self._holdings.get(device_id)
        return h.count() if h else 0

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._wake()
            self._thread.join(5)

    def _wake(self) -> None:
        """A job is queued: if the owning thread waits on the broker, wake it (pika's
        one thread-safe call)."""
        conn = self._conn
        if self._in_broker_wait and conn is not None:
            with contextlib.suppress(AMQPError, *CONNECTION_ERRORS):
                conn.add_callback_threadsafe(_nothing)

    # ---- the owning thread
    def _submit(self, fn: Callable[[], T]) -> Future:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True, name=self._name)
                self._thread.start()
        future: Future = Future()
        self._jobs.put((fn, future))
        self._wake()
        return future

    def _run(self, fn: Callable[[], T]) -> T:
        try:
            return self._submit(fn).result(JOB_TIMEOUT_S)
        except FutureTimeout:
            raise BrokerUnavailable("the broker is too slow to answer") from None

    def _reading_ahead(self) -> bool:
        """Consumers are open: the owning thread waits on the broker for deliveries."""
        return bool(self._reading or self._streams)

    def _next_job(self) -> tuple[Callable[[], Any], Future] | None | tuple[()]:
        """The next job, or () after a while without one. While consumers are open, the
        thread waits on the broker instead, for deliveries (handed on as they land: to a
        stream's socket, or decoded ahead of the next sync) or a job (`_wake`), up to
        READ_WAIT_S. It used to poll every 10 ms, which cost each actor with an open
        consumer a sixtieth of a core with nothing arriving, and a wake-up up to 10 ms."""
        conn = self._conn
        if self._reading_ahead() and conn is not None and conn.is_open:
            self._in_broker_wait = True  # before looking: a job queued after it wakes us
            try:
                with contextlib.suppress(queue.Empty):
                    return self._jobs.get_nowait()
                try:
                    conn.process_data_events(time_limit=READ_WAIT_S)
                except (AMQPError, *CONNECTION_ERRORS) as e:
                    log.warning("mailbox connection lost: %s", e)
                    self._drop_connection()
            finally:
                self._in_broker_wait = False
            timeout = 0.0
        else:
            timeout = 1.0 if not self._holdings else 0.2
        try:
            return self._jobs.get(timeout=timeout) if timeout else self._jobs.get_nowait()
        except queue.Empty:
            return ()

    def _loop(self) -> None:
        while True:
            job = self._next_job()
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
                self._tidy()
            except (AMQPError, *CONNECTION_ERRORS) as e:
                log.warning("mailbox connection lost: %s", e)
                self._drop_connection()

    def _connection(self) -> BlockingConnection:
        if self._conn is None or not self._conn.is_open:
            self._forget_holdings()  # the broker put them back when the old one died
            self._conn = self._nodes.connect()
        return self._conn

    def _forget_holdings(self) -> None:
        for h in self._holdings.values():
            if h.stream is not None:
                h.stream.end(BROKEN)
        self._holdings.clear()
        self._reading.clear()
        self._streams.clear()

    def _drop_connection(self) -> None:
        self._forget_holdings()
        conn, self._conn = self._conn, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(AMQPError, *CONNECTION_ERRORS):
                conn.close()

    def _holding(self, device_id: str) -> Holding:
        h = self._holdings.get(device_id)
        if h is None or not h.channel.is_open:
            self._reading.discard(device_id)
            if len(self._holdings) >= HOLDINGS_MAX:  # let the longest idle one go
                idle = [d for d, held in self._holdings.items() if held.stream is None]
                if idle:
                    self._let_go(min(idle, key=lambda d: self._holdings[d].used_at))
            h = Holding(self._connection().channel())
            self._holdings[device_id] = h
        h.used_at = time.monotonic()
        return h

    def _let_go(self, device_id: str, why: int = REPLACED) -> None:
        """Close the device's channel (unacked deliveries go back to their queues); a
        stream that consumed it is told `why`."""
        self._reading.discard(device_id)
        self._streams.discard(device_id)
        h = self._holdings.pop(device_id, None)
        if h is not None and h.stream is not None:
            h.stream.end(why)
        if h is not None and h.channel.is_open:
            with contextlib.suppress(AMQPError, *CONNECTION_ERRORS):
                h.channel.close()  # unacked deliveries go back to their queues

    def _release(self, device_id: str) -> None:
        self._let_go(device_id)
        self._on_released(device_id)

    def _tidy(self) -> None:
        """Once a second, not after every job: both walk every holding, and with a
        thousand streams on an actor, doing it after each ack and each delivery was most
        of what an idle stream cost (and opening n streams took n^2 steps)."""
        now = time.monotonic()
        if now - self._tidied_at < TIDY_EVERY_S:
            return
        self._tidied_at = now
        self._expire_holdings(now)
        self._end_broken_streams()

    def _expire_holdings(self, now: float) -> None:
        limit = now - HOLD_S
        idle = [d for d, h in self._holdings.items() if h.used_at < limit and h.stream is None]
        for device_id in idle:
            self._let_go(device_id)

    # ---- one sync, on the owning thread
    def _end_broken_streams(self) -> None:
        """A channel the broker closed (a consumer timeout, a queue gone) says nothing
        to a consumer: its stream would wait forever. It ends, and the client comes back."""
        for device_id in list(self._streams):
            h = self._holdings.get(device_id)
            if h is None or not h.channel.is_open:
                self._let_go(device_id, BROKEN)

    def _open_stream(self, device_id: str, window: int, link: StreamLink) -> None:
        if link.ended:  # its caller gave up waiting for this job
            return
        self._let_go(device_id)  # a sync's holding, or an older stream (REPLACED)
        if len(self._holdings) >= HOLDINGS_MAX and not any(
            h.stream is None for h in self._holdings.values()
        ):
            raise BrokerUnavailable("this API process holds all the streams it can")
        h = self._holding(device_id)
        h.stream = link
        ch = h.channel
        try:
            ch.basic_qos(prefetch_count=window, global_qos=True)  # over both lanes
            # the broker cancels a consumer whose queue is deleted: the device is gone
            ch.add_on_cancel_callback(lambda _frame: link.end(GONE))
            for lane in LANES:
                ch.basic_consume(self.names.device_queue(device_id, lane), self._to(link, lane))
        except ChannelClosedByBroker as e:
            self._holdings.pop(device_id, None)
            if e.reply_code == 404:
                raise DeviceNotFound("this device is no longer registered") from None
            raise BrokerUnavailable(str(e)) from None
        self._streams.add(device_id)

    @staticmethod
    def _to(link: StreamLink, lane: str) -> Callable[..., None]:
        def on_message(_ch, method, props, body) -> None:
            link.deliver(taken(lane, method, props, body))

        return on_message

    def _sync(
        self, device_id: str, ack: set[str], max_n: int, on_settled: Settled | None
    ) -> list[Taken]:
        streaming = self._holdings.get(device_id)
        if streaming is not None and streaming.stream is not None:  # a sync ends a stream
            self._let_go(device_id)
        h = self._holding(device_id)
        acked, held, unknown = split_held(h.held, ack)  # unknown: maybe let go by another
        settled = Settlement(acked=acked)
        if h.consumers:
            # reading ahead: ack now, before reading, to free the consumers' window, so
            # the broker sends what was not read ahead while this sync waits for it
            tags, ids = settled.settle_early()
            h.ack(tags)
            if on_settled is not None and ids:  # counted now: the read may yet fail
                on_settled({"acked": ids})
        lanes: list[list[Taken]] = []
        budget = max_n
        try:
            for lane in LANES:
                mine = [t for t in held if t.lane == lane]
                budget -= len(mine)
                want = max(budget, 0)
                self._read(h, device_id, lane, want + len(unknown), len(mine), max_n)
                found, fresh, h.ahead[lane] = take_fresh(h.ahead[lane], unknown, want)
                settled.acked += found
                budget -= len(fresh)
                lanes.append(mine + fresh)
        except ChannelClosedByBroker as e:
            self._holdings.pop(device_id, None)
            if e.reply_code == 404:
                raise DeviceNotFound("this device is no longer registered") from None
            raise BrokerUnavailable(str(e)) from None

        kept = decide(lanes, int(time.time() * 1000), settled)
        h.ack(settled.tags())
        if on_settled is not None:
            on_settled(settled.counts())
        h.held = kept
        caught_up = max_n == 0 or len(kept) < max_n
        if caught_up or len(self._reading) > READING_MAX:  # nothing to read ahead, or no room
            self._stop_reading(device_id, h)
        return kept[:max_n]

    def _read(
        self, h: Holding, device_id: str, lane: str, need: int, unacked: int, max_n: int
    ) -> None:
        """Make h.ahead[lane] hold `need` messages, or all the lane has: up to GETS_MAX
        by basic.get (a wake-up, an empty lane: a round trip each, no consumer to open
        and cancel), more through a consumer that stays open. Its window (the unacked
        deliveries the broker may send to it) covers the `unacked` messages of the lane
        the device was given and has not acked, `need`, and the next batch (`max_n`)."""
        ahead = h.ahead[lane]
        if len(ahead) >= need:
            return  # read ahead by the last sync: nothing to ask the broker
        ch = h.channel
        conn = ch.connection
        queue_name = self.names.device_queue(device_id, lane)
        open_ = h.consumers.get(lane)
        if open_ is not None and open_[1] < unacked + need:  # too narrow for this sync
            self._cancel(h, lane)
            open_ = None
            if not h.consumers:
                self._reading.discard(device_id)
        if open_ is None:
            # a few messages (a wake-up, an empty lane) cost a round trip each by
            # basic.get, whose answer also says how many are left; more get a consumer
            for _ in range(GETS_MAX):
                method, props, body = ch.basic_get(queue_name)
                if method is None:
                    return  # the lane is empty
                ahead.append(taken(lane, method, props, body))
                ready = method.message_count
                if ready == 0 or len(ahead) >= need:
                    return
        else:
            # what the broker sent before this answer has arrived by then; the count
            # is what it has not sent yet
            ready = ch.queue_declare(queue_name, passive=True).method.message_count
            conn.process_data_events(0)
        expect = min(len(ahead) + ready, need)
        if len(ahead) >= expect:
            return
        if open_ is None:
            window = unacked + need + max_n
            ch.basic_qos(prefetch_count=window)
            tag = ch.basic_consume(queue_name, self._on_delivery(h, lane))
            h.consumers[lane] = (tag, window)
            self._reading.add(device_id)
        # the ready count may include expired messages the broker drops as it delivers:
        # stop once deliveries pause, rather than wait for ones that will never come
        deadline = time.monotonic() + DELIVERY_WAIT_S
        quiet_until = time.monotonic() + DELIVERY_GAP_S
        while len(ahead) < expect:
            now = time.monotonic()
            if now >= deadline or now >= quiet_until:
                break
            before = len(ahead)
            conn.process_data_events(time_limit=min(deadline, quiet_until) - now)
            if len(ahead) > before:
                quiet_until = time.monotonic() + DELIVERY_GAP_S

    def _on_delivery(self, h: Holding, lane: str) -> Callable[..., None]:
        def on_message(_ch, method, props, body) -> None:
            h.ahead[lane].append(taken(lane, method, props, body))

        return on_message

    def _stop_reading(self, device_id: str, h: Holding) -> None:
        """Close the device's consumers; what they delivered stays ahead (the head of
        its lane), for the next sync."""
        if h.consumers:
            h.channel.connection.process_data_events(0)  # take in what has arrived
            for lane in list(h.consumers):
                self._cancel(h, lane)
        self._reading.discard(device_id)

    @staticmethod
    def _cancel(h: Holding, lane: str) -> None:
        tag, _window = h.consumers.pop(lane)
        h.channel.basic_cancel(tag)  # deliveries not yet handed to us go back, redelivered


def _nothing() -> None:
    """What `_wake` asks pika to run: the call itself ends the broker wait."""


def taken(lane: str, method: Any, props: pika.BasicProperties, body: bytes) -> Taken:
    """A delivery (basic.get or consumed) as the decisions see it."""
    return Taken(
        id=props.message_id or "",
        lane=lane,
        tag=method.delivery_tag,
        redelivered=bool(method.redelivered),
        body=body,
        collapse_key=_header(props, "collapse_key"),
        created_ms=_int_header(props, "created_ms") or 0,
        expires_ms=_int_header(props, "expires_ms"),
    )
