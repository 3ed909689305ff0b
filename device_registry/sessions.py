"""Device sessions and presence in Redis, shared by every API instance.

A session token is random; Redis keeps only its hash, with a sliding expiry. Each
device also has a set of its session hashes, so that all can be revoked at once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from pushbox_core.keys import hash_key, new_key
from pushbox_core.names import Names
from pushbox_core.redis_client import redis_errors

ONLINE_WINDOW_S = 60
# how stale devices.last_active_at may get while a device keeps using one session
ACTIVITY_WRITE_S = 600
PRESENCE_KEEP_S = 30 * 86_400


@dataclass(frozen=True)
class Session:
    device_id: str
    app_id: str


@dataclass(frozen=True)
class Presence:
    online: bool
    last_seen_at: datetime | None


class Sessions:
    def __init__(self, client: redis.Redis, names: Names, ttl_s: int):
        self.redis = client
        self.names = names
        self.ttl_s = ttl_s

    def open(self, device_id: str, app_id: str) -> str:
        token = new_key("st_")
        token_hash = hash_key(token)
        index = self.names.device_sessions_key(device_id)
        value = json.dumps({"device_id": device_id, "app_id": app_id})
        with redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(self.names.session_key(token_hash), value, ex=self.ttl_s)
            pipe.sadd(index, token_hash)
            pipe.expire(index, self.ttl_s)
            pipe.execute()
        return token

    def lookup(self, token: str) -> Session | None:
        """The session behind a token, extending its life (sliding expiry)."""
        key = self.names.session_key(hash_key(token))
        with redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(key)
            pipe.expire(key, self.ttl_s)
            value, _ = pipe.execute()
        if value is None:
            return None
        data = json.loads(value)
        return Session(device_id=data["device_id"], app_id=data["app_id"])

    def revoke_all(self, device_id: str) -> None:
        index = self.names.device_sessions_key(device_id)
        with redis_errors():
            hashes: set[str] = self.redis.smembers(index)  # type: ignore[assignment]
            pipe = self.redis.pipeline(transaction=True)
            for token_hash in hashes:
                pipe.delete(self.names.session_key(token_hash))
            pipe.delete(index, self.names.presence_key(device_id))
            pipe.execute()

    def seen(self, device_id: str) -> bool:
        """The device is active now. True when its activity was last written more than
        ACTIVITY_WRITE_S ago (or never): the caller then writes it to MySQL, where a
        campaign's `seen_within_s` reads it. One round trip for both."""
        with redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            for command in self.seen_commands(device_id):
                pipe.execute_command(*command)
            return self.activity_due(pipe.execute())

    def seen_commands(self, device_id: str) -> list[tuple]:
        """seen() as commands, for a shared pipeline; activity_due() reads their replies."""
        return [
            ("SET", self.names.presence_key(device_id), time.time(), "EX", PRESENCE_KEEP_S),
            ("SET", self.names.activity_written_key(device_id), 1, "NX", "EX", ACTIVITY_WRITE_S),
        ]

    @staticmethod
    def activity_due(replies: list) -> bool:
        return bool(replies[1])

    def presence(self, device_id: str) -> Presence:
        with redis_errors():
            value = self.redis.get(self.names.presence_key(device_id))
        if value is None:
            return Presence(online=False, last_seen_at=None)
        at = float(value)
        return Presence(
            online=time.time() - at < ONLINE_WINDOW_S,
            last_seen_at=datetime.fromtimestamp(at, UTC),
        )
