"""`GET /v1/device/stream` as a service: a live stream of the device's messages over a
socket, with acks on the same socket (DESIGN "Live stream").

The mailbox holds a broker consumer for the device while the stream is open, with at
most `window` messages unacked (the broker's prefetch over both lanes): each delivery
goes through the same decisions as a sync (copies and expired messages are settled,
never sent; of one collapse key only the newest in sight is sent) and out as a frame;
the client's acks map back to delivery tags. Everything not acked when the stream ends
goes back to the queue, and comes back redelivered on the next stream or sync.

Two greenlets (threads) a stream: this one waits for deliveries and sends; a reader
takes the client's frames. The socket is given as a small interface (`Socket`), so the
WebSocket details stay in the view.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

from device_registry.sessions import Session
from dispatcher.delivery.decisions import Settlement, Taken, collapse, screen
from dispatcher.delivery.mailbox import BROKEN, REPLACED
from dispatcher.delivery.sync import Counts, Delivery, claim, counts_of
from pushbox_core import metrics
from pushbox_core.errors import PushboxError
from pushbox_core.names import LANES

log = logging.getLogger(__name__)

WINDOW_DEFAULT = 100
WINDOW_MAX = 500
ALIVE_EVERY_S = 20.0  # the stream's claim, connected mark and presence: renewed within this
RENEW_RETRY_S = 3.0  # a renewal that failed is tried again this soon
BAD_FRAME = 4000
DONE = 1000  # the client went away, or closed


class Socket(Protocol):
    def receive(self, timeout: float | None = None) -> str | bytes | None: ...

    def send(self, frames: list[bytes]) -> None:
        """Each of these text frames, in order, in as few writes as it can."""

    def close(self, reason: int, message: str) -> None: ...


class SocketClosed(Exception):
    """The client's side of the socket is gone (the view maps its library's error)."""


class Outbox:
    """The mailbox's side of the stream (a StreamLink): deliveries and the end, in order,
    handed from the mailbox's thread to the stream's. A deque and a flag rather than a
    queue.Queue: a backlog arrives hundreds of deliveries at a time, and each put and
    get of a Queue takes its locks."""

    def __init__(self) -> None:
        self._items: collections.deque[Taken] = collections.deque()
        self._landed = threading.Event()
        self.code: int | None = None

    def deliver(self, t: Taken) -> None:
        self._items.append(t)
        if not self._landed.is_set():
            self._landed.set()

    def end(self, code: int) -> None:
        if self.code is None:
            self.code = code
            self._landed.set()

    @property
    def ended(self) -> bool:
        return self.code is not None

    def take(self, timeout: float) -> list[Taken]:
        """What has landed: waits up to `timeout` for the first, then takes the rest
        that is there already. Empty when nothing came, or the stream ended."""
        if not self._items and self.code is None:
            self._landed.wait(timeout)
        self._landed.clear()  # before taking: what lands after sets it again
        got = []
        with contextlib.suppress(IndexError):
            while True:
                got.append(self._items.popleft())
        return got


def stream_device(
    session: Session,
    window: int,
    socket: Socket,
    *,
    d: Delivery,
    count: Callable[[Counts], None],
    active: Callable[[], None],
) -> int:
    """Stream until the client goes, the device is taken over or deleted, or the broker
    is lost; returns the close code (the caller closes the socket with it). `active()`
    writes the device's activity to MySQL, when its renewal says it is due."""
    device_id = session.device_id
    mine = claim(device_id, d=d)  # another instance's sync or stream lets go first
    opened_ms = int(time.time() * 1000)
    outbox = Outbox()
    try:
        d.mailbox.open_stream(device_id, window, outbox)
    except BaseException:
        outbox.end(BROKEN)  # a job that runs late opens nothing
        raise
    in_flight: dict[str, Taken] = {}  # sent, not acked: by id
    lock = threading.Lock()

    def settle(settled: Settlement) -> None:
        tags = settled.tags()
        if not tags:
            return
        counts = counts_of(settled.counts())
        # counted once the broker has the acks: acks that never reach it (the stream
        # ended meanwhile) come back with their messages, and count then
        d.mailbox.ack_stream(device_id, outbox, tags, lambda: count(counts) if counts else None)

    def read() -> None:
        """The client's frames: acks (ids not in flight here are ignored)."""
        while outbox.code is None:
            try:
                frame = socket.receive(timeout=ALIVE_EVERY_S)
            except SocketClosed:
                outbox.end(DONE)
                return
            if frame is None:
                continue  # nothing yet: look again whether the stream still runs
            ids = _acked_ids(frame)
            if ids is None:
                outbox.end(BAD_FRAME)
                return
            with lock:
                acked = [in_flight.pop(i) for i in dict.fromkeys(ids) if i in in_flight]
            settle(Settlement(acked=acked))

    reader = threading.Thread(target=read, daemon=True, name=f"stream-{device_id}")
    reader.start()
    mark = None

    def renew() -> bool:
        """Connected (no platform wake), online, and still the device's holder."""
        nonlocal mark
        kept = d.keepalive.renew(device_id, mine, 2 * ALIVE_EVERY_S)
        if kept.holding:
            mark = kept.mark
        if kept.activity_due:
            active()
        return kept.holding

    try:  # from here on, whatever fails closes the stream's consumer (finally)
        if not renew():
            outbox.end(REPLACED)  # another sync or stream took the device already
        renewed_at = time.monotonic()
        renew_at = renewed_at + _spread(ALIVE_EVERY_S)
        with metrics.streaming():
            while outbox.code is None:
                # an idle stream wakes only to renew its marks (not every second: at
                # 10,000 streams that alone was 10,000 wake-ups a second)
                batch = outbox.take(timeout=max(0.0, renew_at - time.monotonic()))
                if batch and outbox.code is None:
                    # what landed together goes out in one write (one syscall, not one a
                    # message: the write was a quarter of the worker's time draining)
                    socket.send(_frames(batch, in_flight, lock, settle, opened_ms))
                now = time.monotonic()
                if now >= renew_at:
                    try:
                        if not renew():
                            # another sync or stream took the device, and the ask to let
                            # go (a pub/sub hint) was lost: end as replaced all the same
                            outbox.end(REPLACED)
                            break
                        renewed_at, renew_at = now, now + _spread(ALIVE_EVERY_S)
                    except PushboxError:
                        # Redis busy (thousands of streams opened together renew together,
                        # and waited past the pool's 5 s: 1,888 of 6,000 streams ended so),
                        # or down: the stream goes on, and ends only when its mark would
                        # lapse
                        if now - renewed_at >= 2 * ALIVE_EVERY_S - RENEW_RETRY_S:
                            raise
                        renew_at = now + _spread(RENEW_RETRY_S)
    except SocketClosed:
        outbox.end(DONE)
    except PushboxError as e:  # Redis or the broker, while streaming
        log.warning("device %s: stream ended: %s", device_id, e)
        outbox.end(BROKEN)
    finally:
        d.mailbox.close_stream(device_id, outbox)
        if mark is not None:
            with contextlib.suppress(PushboxError):
                d.connections.disconnect(device_id, mark)
    return outbox.code or DONE


def _spread(seconds: float) -> float:
    """A while of up to `seconds`, at random from three quarters of it: streams opened
    together do not come back to Redis together."""
    return seconds * random.uniform(0.75, 1.0)


def _frames(
    batch: list[Taken],
    in_flight: dict[str, Taken],
    lock: threading.Lock,
    settle: Callable[[Settlement], None],
    opened_ms: int,
) -> list[bytes]:
    """The decisions of a sync over what just landed (high lane first): the frames to
    send; what must not be sent is settled. The delivery latency is recorded for what
    was sent while the stream was open: a backlog's age is the time the phone was away,
    not ours (and timing each message of a 10,000 backlog was a tenth of the drain)."""
    settled = Settlement()
    lanes = [[t for t in batch if t.lane == lane] for lane in LANES]
    with lock:
        live = screen(
            (t for lane in lanes for t in lane), int(time.time() * 1000), set(in_flight), settled
        )
        kept = collapse(live, settled)
        for t in kept:
            in_flight[t.id] = t
    settle(settled)
    now_s = time.time()
    for t in kept:
        if not t.redelivered and t.created_ms >= opened_ms:  # from its send to its frame
            metrics.stream_delivered(max(0.0, now_s - t.created_ms / 1000))
    return [b'{"op":"message",' + t.wire()[1:] for t in kept]


def _acked_ids(frame: str | bytes | None) -> list[str] | None:
    """The ids of an ack frame; None for anything else (a bad frame)."""
    try:
        message = json.loads(frame or b"")
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("op") != "ack":
        return None
    ids = message.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return ids


__all__ = ["REPLACED", "WINDOW_DEFAULT", "WINDOW_MAX", "Socket", "SocketClosed", "stream_device"]
