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
import time
from collections.abc import Callable

import redis

from pushbox_core.errors import Conflict, DeliveryUnknown, InvalidRequest
from pushbox_core.names import Names
from pushbox_core.redis_client import redis_errors

KEEP_S = 24 * 3600
# a claim whose request died frees itself after this; longer than a send can take (three
# attempts of up to 10 s to connect and 15 s to confirm, twice with a topology repair)
CLAIM_S = 180
KEY_MAX_CHARS = 255
IN_PROGRESS = "in-progress"

Answer = tuple[dict, int]
log = logging.getLogger(__name__)


# set KEYS[1] to ARGV[2] (expiring in ARGV[3] s) only if it still holds ARGV[1]
SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


class Idempotency:
    def __init__(self, client: redis.Redis, names: Names):
        self.redis = client
        self.names = names
        self._swap = client.register_script(SWAP)

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
        unconfirmed send to send again under, or None for a new send).

        A retry of an unconfirmed send claims the key without dropping the id: the
        claim holds it (24 h, like an answer) and says until when it is taken, so a
        retry that dies leaves the id for the one after it."""
        if self.redis.set(slot, IN_PROGRESS, nx=True, ex=CLAIM_S):
            return None, None
        earlier = self.redis.get(slot)
        saved = _parsed(earlier)
        if "body" in saved:
            return (saved["body"], saved["status"]), None
        now = time.time()
        if "resend" in saved and saved.get("taken_until", 0) <= now:
            claim = json.dumps({"resend": saved["resend"], "taken_until": now + CLAIM_S})
            if self._swap(keys=[slot], args=[str(earlier), claim, KEEP_S]):
                return None, saved["resend"]
        raise Conflict("a request with this Idempotency-Key is still in progress")


def _parsed(value: str | bytes | None) -> dict:
    """What a key holds: {} for a claim in progress (or anything unreadable, which then
    answers 409 until it expires, rather than 500)."""
    if value is None or value == IN_PROGRESS:
        return {}
    try:
        saved = json.loads(value)
        if isinstance(saved, dict) and isinstance(saved.get("taken_until", 0), int | float):
            return saved
    except ValueError:
        pass
    log.warning("Idempotency-Key slot holds something unreadable: %r", value)
    return {}
