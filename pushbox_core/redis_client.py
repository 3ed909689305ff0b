"""Redis: one client per process (its pool is thread-safe), errors mapped to ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from pushbox_core.errors import CacheUnavailable


def connect(url: str) -> redis.Redis:
    """A client; it opens connections on first use, not here."""
    return redis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
        decode_responses=True,
    )


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn Redis connection trouble into CacheUnavailable."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
        raise CacheUnavailable(str(e)) from None
