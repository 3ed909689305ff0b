"""Which API process holds the messages a device was last given (see mailbox.py), in
Redis, so that a sync landing on another process knows whom to ask to let go."""

from __future__ import annotations

import redis

from pushbox_core.names import Names
from pushbox_core.redis_client import redis_errors


class Holders:
    KEEP_S = 300

    def __init__(self, client: redis.Redis, names: Names):
        self.redis = client
        self.names = names

    def claim(self, device_id: str, instance: str) -> str | None:
        """Become the holder; returns the previous one."""
        with redis_errors():
            previous = self.redis.set(
                self.names.holder_key(device_id), instance, ex=self.KEEP_S, get=True
            )
        return str(previous) if previous is not None else None

    def current(self, device_id: str) -> str | None:
        with redis_errors():
            holder = self.redis.get(self.names.holder_key(device_id))
        return str(holder) if holder is not None else None

    def drop(self, device_id: str) -> str | None:
        """The device is gone: forget its holder; returns who it was."""
        with redis_errors():
            holder = self.redis.getdel(self.names.holder_key(device_id))
        return str(holder) if holder is not None else None
