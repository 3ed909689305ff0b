"""Idempotency keys against the real Redis: a key that holds an unconfirmed send is
taken over by one retry at a time, and never loses its id or a later answer."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from pushbox_core.errors import Conflict, DeliveryUnknown
from pushbox_core.idempotency import Idempotency


@pytest.fixture
def idem(app):
    return Idempotency(app.extensions["pushbox"].redis, app.extensions["pushbox"].names)


def unconfirmed(idem: Idempotency, message_id: str) -> str:
    """A key whose send the broker never confirmed."""

    def work(resend):
        assert resend is None
        e = DeliveryUnknown("held")
        e.message_id = message_id
        raise e

    key = uuid.uuid4().hex
    with pytest.raises(DeliveryUnknown):
        idem.once("app-1", key, work)
    return key


def test_one_retry_at_a_time_takes_an_unconfirmed_send_over(idem):
    key = unconfirmed(idem, "m-1")
    slot = idem.names.idempotency_key("app-1", key)
    seen = []

    def retry(resend):
        seen.append(resend)
        with pytest.raises(Conflict):  # a second retry meanwhile is told to wait
            idem.once("app-1", key, lambda _: ({"id": "other"}, 202))
        assert json.loads(idem.redis.get(slot))["resend"] == "m-1"  # the id stays
        return {"id": resend, "targets": 1}, 202

    assert idem.once("app-1", key, retry) == ({"id": "m-1", "targets": 1}, 202)
    assert seen == ["m-1"]
    assert idem.once("app-1", key, lambda _: pytest.fail("sent again")) == (
        {"id": "m-1", "targets": 1},
        202,
    )


def test_a_late_retry_cannot_overwrite_the_answer(idem):
    """The swap is a compare-and-set: a retry that read the key before another one
    took it over and answered finds it changed, and leaves the answer alone."""
    key = unconfirmed(idem, "m-2")
    slot = idem.names.idempotency_key("app-1", key)
    stale = idem.redis.get(slot)  # what a slow retry read
    assert idem.once("app-1", key, lambda resend: ({"id": resend}, 202)) == ({"id": "m-2"}, 202)
    assert not idem._swap(keys=[slot], args=[stale, "taken", 60])
    assert json.loads(idem.redis.get(slot))["body"] == {"id": "m-2"}


def test_a_retry_that_died_leaves_the_id_for_the_next(idem):
    key = unconfirmed(idem, "m-3")
    slot = idem.names.idempotency_key("app-1", key)
    # a retry took it over, then its process died: its claim runs out, the id stays
    idem.redis.set(slot, json.dumps({"resend": "m-3", "taken_until": time.time() - 1}))
    assert idem.once("app-1", key, lambda resend: ({"id": resend}, 202)) == ({"id": "m-3"}, 202)


@pytest.mark.parametrize("garbage", ["not json", "[1, 2]", '{"resend": "m", "taken_until": "x"}'])
def test_a_slot_holding_something_unreadable_answers_409_not_500(idem, garbage):
    key = uuid.uuid4().hex
    idem.redis.set(idem.names.idempotency_key("app-1", key), garbage, ex=60)
    with pytest.raises(Conflict):
        idem.once("app-1", key, lambda _: pytest.fail("sent"))
