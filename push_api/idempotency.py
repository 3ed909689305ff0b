"""Idempotency-Key on sending endpoints: the same key from the same sender within
24 hours returns the first answer and sends nothing again.

The key is claimed atomically (SET NX) before the work, so two concurrent requests
with one key cannot both send; the second is told to retry (409). A failed send
releases the key, so a retry after a 503 can go through."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable

import redis

from pushbox_core.errors import Conflict, InvalidRequest
from pushbox_core.names import Names
from pushbox_core.redis_client import redis_errors

KEEP_S = 24 * 3600
CLAIM_S = 60  # a claim whose request died frees itself after this
KEY_MAX_CHARS = 255
IN_PROGRESS = "in-progress"

Answer = tuple[dict, int]
log = logging.getLogger(__name__)


class Idempotency:
    def __init__(self, client: redis.Redis, names: Names):
        self.redis = client
        self.names = names

    def once(self, sender: str, key: str | None, work: Callable[[], Answer]) -> Answer:
        if key is None:
            return work()
        if not 0 < len(key) <= KEY_MAX_CHARS:
            raise InvalidRequest(f"Idempotency-Key must be 1-{KEY_MAX_CHARS} characters")
        slot = self.names.idempotency_key(sender, key)
        with redis_errors():
            claimed = self.redis.set(slot, IN_PROGRESS, nx=True, ex=CLAIM_S)
            if not claimed:
                earlier = self.redis.get(slot)
                if earlier is not None and earlier != IN_PROGRESS:
                    saved = json.loads(str(earlier))
                    return saved["body"], saved["status"]
                raise Conflict("a request with this Idempotency-Key is still in progress")
        try:
            body, status = work()
        except BaseException:
            with contextlib.suppress(redis.RedisError):
                self.redis.delete(slot)
            raise
        try:  # the send happened: report it even if the answer can't be kept
            self.redis.set(slot, json.dumps({"body": body, "status": status}), ex=KEEP_S)
        except redis.RedisError:
            log.warning("sent, but could not keep the answer for Idempotency-Key %r", key)
        return body, status
