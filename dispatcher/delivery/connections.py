"""Which devices are connected: waiting in a sync or streaming, on any API instance.
A connected device is reached by the queue itself and gets no platform wake.

A key per device in Redis, set while the wait lasts (with an expiry a little past it,
so a process that dies leaves nothing behind for long). When the wait ends the key
lingers LINGER_S more, if it still names this wait: a long-polling app comes straight
back for its next sync, and the message that ended its wait (which the worker judges
a moment later) must not also wake it through FCM or APNs."""

from __future__ import annotations

import secrets

import redis

from pushbox_core.names import Names
from pushbox_core.redis_client import redis_errors

GRACE_S = 5  # a marker outlives its wait by this much, at most
LINGER_S = 5  # ...and stays this long after the wait ended

# expire KEYS[1] in ARGV[2] s only if it still holds ARGV[1] (else a later wait owns it)
LINGER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def new_mark() -> str:
    return secrets.token_hex(8)


class Connections:
    def __init__(self, client: redis.Redis, names: Names):
        self.redis = client
        self.names = names
        self._linger = client.register_script(LINGER)

    def connect(self, device_id: str, seconds: float) -> str:
        """Mark the device connected for up to `seconds` (+ grace); returns the mark,
        for disconnect()."""
        mark = new_mark()
        with redis_errors():
            self.redis.set(self.names.connected_key(device_id), mark, ex=int(seconds) + GRACE_S)
        return mark

    def disconnect(self, device_id: str, mark: str) -> None:
        """The wait ended: the device counts as connected LINGER_S more."""
        with redis_errors():
            self._linger(keys=[self.names.connected_key(device_id)], args=[mark, LINGER_S])

    def connected(self, device_ids: list[str]) -> set[str]:
        """Which of these devices are connected now (one round trip)."""
        if not device_ids:
            return set()
        with redis_errors():
            found = self.redis.mget([self.names.connected_key(d) for d in device_ids])
        return {d for d, mark in zip(device_ids, found, strict=True) if mark is not None}
