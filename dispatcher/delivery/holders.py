"""Which API process holds the messages a device was last given (see mailbox.py), in
Redis, so that a sync landing on another process knows whom to ask to let go."""

from __future__ import annotations

import secrets

import redis

from pushbox_core.names import Names
from pushbox_core.redis_client import redis_errors


def instance_of(claim: str | None) -> str | None:
    """The process a claim names ("<instance> <nonce>")."""
    return None if claim is None else claim.split(" ", 1)[0]


class Holders:
    """A claim is "<instance> <nonce>": the process, and which of its requests or streams
    claimed last, so that an older request of the same process can tell it is stale."""

    KEEP_S = 300

    def __init__(self, client: redis.Redis, names: Names):
        self.redis = client
        self.names = names

    def claim(self, device_id: str, instance: str) -> tuple[str, str | None]:
        """Become the holder: (this claim, the process that held the device before)."""
        mine = f"{instance} {secrets.token_hex(4)}"
        with redis_errors():
            previous = self.redis.set(
                self.names.holder_key(device_id), mine, ex=self.KEEP_S, get=True
            )
        return mine, instance_of(None if previous is None else str(previous))

    def current(self, device_id: str) -> str | None:
        """The last claim."""
        with redis_errors():
            holder = self.redis.get(self.names.holder_key(device_id))
        return str(holder) if holder is not None else None

    def drop(self, device_id: str) -> str | None:
        """The device is gone: forget its holder; returns the process that held it."""
        with redis_errors():
            holder = self.redis.getdel(self.names.holder_key(device_id))
        return instance_of(None if holder is None else str(holder))
