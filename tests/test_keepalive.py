"""A stream's renewal in Redis (dispatcher.delivery.keepalive), and the shared pipeline
that sends every stream's renewal in one round trip, against the real Redis."""

from __future__ import annotations

import secrets
import threading

import pytest
import redis

from dispatcher.delivery.keepalive import KEEP, KeepAlive
from pushbox_core.redis_client import SharedPipeline


@pytest.fixture
def pushbox(app):
    return app.extensions["pushbox"]


def test_a_renewal_marks_the_device_connected_and_online_and_keeps_its_claim(pushbox, names):
    d = pushbox.delivery
    device_id = f"keepalive-{secrets.token_hex(4)}"
    mine, _ = d.holders.claim(device_id, "api-test")
    pushbox.redis.expire(names.holder_key(device_id), 10)

    first = d.keepalive.renew(device_id, mine, 40)
    again = d.keepalive.renew(device_id, mine, 40)

    assert first.holding and again.holding and again.mark is not None
    assert pushbox.redis.get(names.connected_key(device_id)) == again.mark != first.mark
    assert d.connections.connected([device_id]) == {device_id}
    assert 40 < pushbox.redis.ttl(names.connected_key(device_id)) <= 45
    assert pushbox.redis.ttl(names.holder_key(device_id)) > 10  # pushed back
    assert pushbox.sessions.presence(device_id).online
    # its activity is written to MySQL once a while, not at every renewal
    assert first.activity_due and not again.activity_due


def test_a_replaced_stream_neither_keeps_the_claim_nor_marks_the_device(pushbox, names):
    """Another sync or stream took the device: the renewal says so, and leaves the newer
    one's claim and connected mark as they were."""
    d = pushbox.delivery
    device_id = f"keepalive-{secrets.token_hex(4)}"
    mine, _ = d.holders.claim(device_id, "api-one")
    theirs, before = d.holders.claim(device_id, "api-two")
    pushbox.redis.expire(names.holder_key(device_id), 10)
    their_mark = d.connections.connect(device_id, 5)

    kept = d.keepalive.renew(device_id, mine, 40)

    assert before == "api-one"
    assert not kept.holding and kept.mark is None
    assert pushbox.redis.get(names.connected_key(device_id)) == their_mark
    assert pushbox.redis.ttl(names.connected_key(device_id)) <= 10
    assert pushbox.redis.ttl(names.holder_key(device_id)) <= 10  # not pushed back
    assert d.keepalive.renew(device_id, theirs, 40).holding


def test_a_claim_that_lapsed_is_not_brought_back(pushbox, names):
    d = pushbox.delivery
    device_id = f"keepalive-{secrets.token_hex(4)}"
    mine, _ = d.holders.claim(device_id, "api-one")
    pushbox.redis.delete(names.holder_key(device_id))  # as its expiry would

    kept = d.keepalive.renew(device_id, mine, 40)

    assert not kept.holding
    assert pushbox.redis.exists(names.holder_key(device_id), names.connected_key(device_id)) == 0


def test_a_renewal_works_again_after_redis_forgot_its_script(pushbox, names):
    d = pushbox.delivery
    device_id = f"keepalive-{secrets.token_hex(4)}"
    mine, _ = d.holders.claim(device_id, "api-one")
    # as after a restarted Redis: a script it does not know (not SCRIPT FLUSH, which
    # would reach every other user of this Redis): the same script with a comment of its own
    pipeline = SharedPipeline(pushbox.redis, name="test-keepalive")
    keepalive = KeepAlive(pipeline, names, pushbox.sessions)
    keepalive._sha = pipeline.script(f"{KEEP}\n-- {secrets.token_hex(8)}")
    try:
        kept = keepalive.renew(device_id, mine, 40)
    finally:
        keepalive.close()
    assert kept.holding and kept.activity_due
    assert pushbox.redis.get(names.connected_key(device_id)) == kept.mark


def test_callers_of_a_shared_pipeline_get_their_own_replies_and_errors(pushbox, names):
    """Many callers' commands in the same round trips: each caller gets the replies to
    its own commands in order, and a command that fails fails only its caller."""
    pipeline = SharedPipeline(pushbox.redis, name="test-pipeline")
    key = f"{names.redis_prefix}:test-pipeline:{secrets.token_hex(4)}"
    pushbox.redis.set(f"{key}:text", "not a number", ex=60)
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            if i == 7:
                results[i] = pipeline.several([("SET", f"{key}:{i}", i), ("INCR", f"{key}:text")])
            else:
                results[i] = pipeline.several(
                    [("SET", f"{key}:{i}", i, "EX", 60), ("GET", f"{key}:{i}")]
                )
        except redis.ResponseError as e:
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        pipeline.close()
        pushbox.redis.delete(f"{key}:text", *(f"{key}:{i}" for i in range(20)))

    assert isinstance(results.pop(7), redis.ResponseError)
    assert results == {i: [True, str(i)] for i in range(20) if i != 7}


def test_one_round_trip_answers_each_caller_on_its_own(pushbox, names):
    """What one batch of several callers gets back: each its replies, in order; a caller
    whose command failed, that error (the others' commands still ran)."""
    pipeline = SharedPipeline(pushbox.redis, name="test-pipeline")
    key = f"{names.redis_prefix}:test-pipeline:{secrets.token_hex(4)}"
    pushbox.redis.set(f"{key}:text", "not a number", ex=60)
    try:
        answers = pipeline._run(
            [
                (("SET", f"{key}:a", "1", "EX", 60), ("GET", f"{key}:a")),
                (("INCR", f"{key}:text"), ("SET", f"{key}:b", "2", "EX", 60)),
                (("GET", f"{key}:b"),),
            ]
        )
    finally:
        pipeline.close()
        pushbox.redis.delete(f"{key}:text", f"{key}:a", f"{key}:b")
    assert answers[0] == [True, "1"]
    assert isinstance(answers[1], redis.ResponseError)
    assert answers[2] == ["2"]


def test_a_script_redis_does_not_know_is_loaded_and_only_its_commands_run_again(pushbox, names):
    """As after a restarted Redis: EVALSHA of a script it does not know is answered
    NOSCRIPT; the pipeline loads the script and runs those commands again, in order,
    and nothing else twice."""
    pipeline = SharedPipeline(pushbox.redis, name="test-pipeline")
    key = f"{names.redis_prefix}:test-pipeline:{secrets.token_hex(4)}"
    sha = pipeline.script(f"return redis.call('INCR', KEYS[1]) -- {secrets.token_hex(8)}")
    try:
        answers = pipeline._run(
            [
                (("EVALSHA", sha, 1, f"{key}:n"), ("INCR", f"{key}:plain")),
                (("EVALSHA", sha, 1, f"{key}:n"),),
            ]
        )
    finally:
        pipeline.close()
        pushbox.redis.delete(f"{key}:n", f"{key}:plain")
    assert answers == [[1, 1], [2]]
