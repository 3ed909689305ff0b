"""Signals between processes over Redis pub/sub: wake a waiting sync when something was
sent to its device (or its app), and ask another API process to let go of the
messages it holds for a device.

Every process subscribes to one channel and keeps its own table of local waiters, so
a signal costs one PUBLISH whatever the number of processes. Signals are hints: a
missed one costs latency (a waiting sync still answers when its wait runs out),
never a message."""

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


class Signals:
    def __init__(self, client: redis.Redis, names: Names, instance: str):
        self.redis = client
        self.names = names
        self.instance = instance
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Waiter]] = defaultdict(set)
        self._listener: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._closed = False
        self._pubsub: redis.client.PubSub | None = None
        self.on_release: Callable[[str], None] | None = None
        # wake-ups of concurrent sends go out together, one PUBLISH for all their keys
        self._wakes: Batcher[list[str], None] = Batcher(
            self._publish_wakes, name="wake-ups", unavailable=CacheUnavailable
        )

    # sending: wake-ups are sent in the background (the caller never waits for them)
    def wake_devices(self, device_ids: Iterable[str]) -> None:
        self._wakes.submit([f"d:{d}" for d in device_ids])

    def wake_app(self, app_id: str) -> None:
        self._wakes.submit([f"a:{app_id}"])

    def _publish_wakes(self, keys: list[list[str]]) -> list[None]:
        self._publish({"wake": [k for ks in keys for k in ks]})
        return [None] * len(keys)

    def ask_release(self, holder: str, device_id: str) -> bool:
        """Ask `holder` to let go of a device's messages; False when no process of that
        name is listening (it died, and the broker took its messages back)."""
        message = json.dumps({"release": device_id, "to": holder})
        try:
            return bool(self.redis.publish(self._own_channel(holder), message))
        except redis.RedisError as e:
            log.warning("could not ask %s to let go of device %s: %s", holder, device_id, e)
            return True  # it may be alive: let the caller wait for it

    def _own_channel(self, instance: str) -> str:
        return f"{self.names.signals_channel}:{instance}"

    def released(self, device_id: str) -> None:
        self._wakes.submit([f"r:{device_id}"])

    def _publish(self, message: dict) -> None:
        try:
            self.redis.publish(self.names.signals_channel, json.dumps(message))
        except redis.RedisError as e:  # a lost hint: the waiting sync times out instead
            log.warning("could not publish a signal: %s", e)

    # receiving
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

    def waiting(self) -> int:
        with self._lock:
            return len({w for ws in self._waiters.values() for w in ws})

    def listen(self) -> None:
        """Subscribe (once per process), so that this process hears signals."""
        with self._lock:
            if self._listener is None or not self._listener.is_alive():
                self._listener = threading.Thread(
                    target=self._listen, daemon=True, name="pushbox-signals"
                )
                self._listener.start()
        self._subscribed.wait(2.0)

    def close(self) -> None:
        self._wakes.close()  # the wake-ups still waiting go out first
        self._closed = True
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                self._pubsub.close()

    def _listen(self) -> None:
        while not self._closed:
            try:
                self._pubsub = pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.names.signals_channel, self._own_channel(self.instance))
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
        if message.get("to") == self.instance and self.on_release is not None:
            self.on_release(str(message["release"]))
        keys = message.get("wake") or ()
        with self._lock:
            hit = [w for k in keys for w in self._waiters.get(k, ())]
        for w in hit:
            w.set()
