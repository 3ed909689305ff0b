"""Signals between processes over Redis pub/sub: wake a waiting sync when something was
sent to its device (or its app), and ask another API process to let go of the
messages it holds for a device.

Every process subscribes to one channel (and one of its own) and keeps its own table of
local waiters, so a signal costs one PUBLISH whatever the number of processes. Signals
are hints: a missed one costs latency (a waiting sync still answers when its wait runs
out), never a message.

`Signals` sends; `Listener` receives, waking local waiters and handing requests to let
go to the process's mailbox. What a signal names is built by `pushbox_core.names`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

import redis

from pushbox_core.batching import Batcher
from pushbox_core.errors import CacheUnavailable
from pushbox_core.names import Names

log = logging.getLogger(__name__)

RESUBSCRIBE_S = 1.0


class Signals:
    """Sending: wake-ups go out in the background (the caller never waits for them);
    wake-ups of concurrent sends share one PUBLISH."""

    def __init__(self, client: redis.Redis, names: Names):
        self.redis = client
        self.names = names
        self._wakes: Batcher[list[str], None] = Batcher(
            self._publish_wakes, name="wake-ups", unavailable=CacheUnavailable
        )

    def wake_devices(self, device_ids: Iterable[str]) -> None:
        self._wakes.submit([Names.wake_device(d) for d in device_ids])

    def wake_devices_now(self, device_ids: Iterable[str]) -> None:
        """As wake_devices, sent before returning: for a process that may end right
        after (a campaign job's forked work horse)."""
        self._publish_wakes([[Names.wake_device(d) for d in device_ids]])

    def wake_app(self, app_id: str) -> None:
        self._wakes.submit([Names.wake_app(app_id)])

    def released(self, device_id: str) -> None:
        """This process let go of a device's messages: whoever asked may read them."""
        self._wakes.submit([Names.released(device_id)])

    def ask_release(self, holder: str, device_id: str) -> bool:
        """Ask `holder` to let go of a device's messages; False when no process of that
        name is listening (it died, and the broker took its messages back)."""
        message = json.dumps({"release": device_id, "to": holder})
        try:
            return bool(self.redis.publish(self.names.instance_channel(holder), message))
        except redis.RedisError as e:
            log.warning("could not ask %s to let go of device %s: %s", holder, device_id, e)
            return True  # it may be alive: let the caller wait for it

    def _publish_wakes(self, keys: list[list[str]]) -> list[None]:
        message = json.dumps({"wake": [k for ks in keys for k in ks]})
        try:
            self.redis.publish(self.names.signals_channel, message)
        except redis.RedisError as e:  # a lost hint: the waiting sync times out instead
            log.warning("could not publish a signal: %s", e)
        return [None] * len(keys)

    def close(self) -> None:
        self._wakes.close()  # the wake-ups still waiting go out first


class Waiter:
    """One waiting request: set when a signal names one of its keys."""

    def __init__(self, keys: tuple[str, ...]):
        self.keys = keys
        self._event = threading.Event()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()


class Listener:
    """Receiving, in one thread per process, subscribed on first use. `on_release`
    (device id) is called when another process asks this one to let go of a device."""

    def __init__(
        self, client: redis.Redis, names: Names, instance: str, on_release: Callable[[str], None]
    ):
        self.redis = client
        self.names = names
        self.instance = instance
        self._on_release = on_release
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Waiter]] = defaultdict(set)
        self._thread: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._closed = False
        self._pubsub: redis.client.PubSub | None = None

    def waiter(self, *keys: str) -> Waiter:
        self.listen()
        w = Waiter(keys)
        with self._lock:
            for k in keys:
                self._waiters[k].add(w)
        return w

    def forget(self, w: Waiter) -> None:
        with self._lock:
            for k in w.keys:
                found = self._waiters.get(k)
                if found is not None:
                    found.discard(w)
                    if not found:
                        del self._waiters[k]

    def listen(self) -> None:
        """Subscribe (once per process), so that this process hears signals."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._listen, daemon=True, name="pushbox-signals"
                )
                self._thread.start()
        self._subscribed.wait(2.0)

    def close(self) -> None:
        self._closed = True
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()

    def _listen(self) -> None:
        while not self._closed:
            try:
                self._pubsub = pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(
                    self.names.signals_channel, self.names.instance_channel(self.instance)
                )
                self._subscribed.set()
                for item in pubsub.listen():
                    if item.get("type") == "message":
                        self._dispatch(item["data"])
            except (redis.RedisError, ValueError, OSError) as e:
                if self._closed:
                    return
                self._subscribed.clear()
                log.warning("signals: lost Redis (%s); resubscribing", e)
                time.sleep(RESUBSCRIBE_S)
                self._subscribed.set()  # don't make requests wait on a Redis outage

    def _dispatch(self, data: str | bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if message.get("to") == self.instance:
            self._on_release(str(message["release"]))
        keys = message.get("wake") or ()
        with self._lock:
            hit = [w for k in keys for w in self._waiters.get(k, ())]
        for w in hit:
            w.set()
