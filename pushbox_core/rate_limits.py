"""Token-bucket rate limits in Redis, atomic across every API instance.

One Lua script refills and takes a token, using the Redis server's clock so that
instances with skewed clocks agree; the checks of concurrent requests share one
round trip (a pipeline of EVALSHA)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

from pushbox_core.errors import RateLimited
from pushbox_core.names import Names
from pushbox_core.redis_client import SharedPipeline
from pushbox_core.settings import Settings

TAKE_TOKEN = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(b[1]), tonumber(b[2])
if tokens == nil then tokens, ts = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


@dataclass(frozen=True)
class Limit:
    kind: str
    per_s: float
    burst: int


class RateLimiter:
    def __init__(self, client: redis.Redis, names: Names, settings: Settings):
        self.names = names
        # the limits Pushbox applies, each from its settings (PUSH_RATE_*)
        s = settings
        self.device = Limit("device", s.rate_device_per_s, s.rate_device_burst)
        self.server_key = Limit("server key", s.rate_server_key_per_s, s.rate_server_key_burst)
        # calls without credentials (registration, sessions), by client address
        self.address = Limit("address", s.rate_registration_per_s, s.rate_registration_burst)
        self._pipeline = SharedPipeline(client, name="rate-limits")
        self._sha = self._pipeline.script(TAKE_TOKEN)

    def close(self) -> None:
        self._pipeline.close()

    def check(self, limit: Limit, who: str) -> None:
        """Take one token for `who`, or raise RateLimited with the wait in seconds."""
        key = self.names.rate_key(limit.kind, who)
        wait_s = float(self._pipeline("EVALSHA", self._sha, 1, key, limit.per_s, limit.burst))
        if wait_s > 0:
            raise RateLimited(
                f"rate limit exceeded: {limit.per_s:g} requests/s per {limit.kind}",
                retry_after_s=max(1, math.ceil(wait_s)),
            )
