"""Idempotency-Key on sending endpoints: the same key from the same sender within
24 hours returns the first answer and sends nothing again.

The key is claimed atomically (SET NX) before the work, so two concurrent requests
with one key cannot both send; the second is told to retry (409). A failed send
releases the key, so a retry after a 503 can go through. A send the broker never
confirmed (DeliveryUnknown: it may be delivered yet) leaves its message id under the
key instead, and the retry sends it again under that id, so a device that got the
first one dedupes the second."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable

import redis

from pushbox_core.errors import Conflict, DeliveryUnknown, InvalidRequest
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

    def once(self, sender: str, key: str | None, work: Callable[[str | None], Answer]) -> Answer:
        """`work(resend_id)`: the send, under a new id (None) or again under the id of
        an unconfirmed one."""
        if key is None:
            return work(None)
        if not 0 < len(key) <= KEY_MAX_CHARS:
            raise InvalidRequest(f"Idempotency-Key must be 1-{KEY_MAX_CHARS} characters")
        slot = self.names.idempotency_key(sender, key)
        with redis_errors():
            first, resend = self._claim(slot)
        if first is not None:
            return first
        try:
            body, status = work(resend)
        except BaseException as e:
            # free the key; but one whose send may have been delivered keeps its id, so
            # that whatever happens to this retry, the next one goes under it again
            unconfirmed = resend
            if isinstance(e, DeliveryUnknown) and e.message_id:
                unconfirmed = e.message_id
            with contextlib.suppress(redis.RedisError):
                if unconfirmed is None:
                    self.redis.delete(slot)
                else:
                    self.redis.set(slot, json.dumps({"resend": unconfirmed}), ex=KEEP_S)
            raise
        try:  # the send happened: report it even if the answer can't be kept
            self.redis.set(slot, json.dumps({"body": body, "status": status}), ex=KEEP_S)
        except redis.RedisError:
            log.warning("sent, but could not keep the answer for Idempotency-Key %r", key)
        return body, status

    def _claim(self, slot: str) -> tuple[Answer | None, str | None]:
        """Claim the key: (the first answer, if there is one; else the id of an
        unconfirmed send to send again under, or None for a new send)."""
        if self.redis.set(slot, IN_PROGRESS, nx=True, ex=CLAIM_S):
            return None, None
        earlier = self.redis.get(slot)
        saved = json.loads(str(earlier)) if earlier not in (None, IN_PROGRESS) else {}
        if "body" in saved:
            return (saved["body"], saved["status"]), None
        # an unconfirmed send: one retry takes it over (the swap is atomic)
        if "resend" in saved:
            swapped = self.redis.set(slot, IN_PROGRESS, xx=True, ex=CLAIM_S, get=True)
            if swapped == earlier:
                return None, saved["resend"]
        raise Conflict("a request with this Idempotency-Key is still in progress")
