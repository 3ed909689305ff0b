"""The pure decisions of a mailbox read (dispatcher/delivery/decisions.py), with plain
values and no servers: acking by delivery tag, dedupe, expiry and collapse.

Delivery tags count up by one with every delivery on a channel, so a `multiple` ack
may only cover a run of tags this process knows it is acking: a missing tag is a
delivery it has not seen yet, and acking it would drop a message the device never got."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.delivery.decisions import (
    Settlement,
    Taken,
    ack_frames,
    collapse,
    decide,
    split_held,
    take_fresh,
)


def acks(to_ack, floor=0, acked=()):
    """The frames, as (tag, multiple) pairs, and the new floor."""
    f = ack_frames(to_ack, floor, acked)
    frames = ([(f.multiple_to, True)] if f.multiple_to else []) + [(t, False) for t in f.singles]
    return frames, f.floor


def test_acking_a_run_from_the_floor_is_one_frame():
    assert acks([1, 2, 3, 4]) == ([(4, True)], 4)
    assert acks([501, 502, 503], floor=500) == ([(503, True)], 503)


def test_a_tag_not_acked_now_splits_into_a_multiple_frame_and_singles():
    assert acks([1, 2, 4]) == ([(2, True), (4, False)], 2)


def test_nothing_acked_sends_nothing_and_a_leading_gap_sends_singles():
    assert acks([]) == ([], 0)
    assert acks([2, 3]) == ([(2, False), (3, False)], 0)


def test_a_delivery_not_seen_yet_is_never_covered_by_multiple():
    """A consumer delivered tag 6 while a basic.get waited and returned tag 7: the
    process knows 5 and 7, not 6. Acking 5 and 7 must leave 6 alone."""
    assert acks([5, 7], floor=4) == ([(5, True), (7, False)], 5)


def test_tags_acked_one_by_one_before_do_not_break_the_run():
    # 3 was acked alone in an earlier sync (an expired message, say)
    assert acks([1, 2, 4, 5], acked={3}) == ([(5, True)], 5)
    # ...but the frame never names a tag that is acked already
    assert acks([1, 2], acked={3}) == ([(2, True)], 3)


class Broker:
    """What a channel's acks do to its unacked deliveries, as RabbitMQ does it."""

    def __init__(self, delivered: int):
        self.unacked = set(range(1, delivered + 1))
        self.acked: list[int] = []

    def ack(self, tag: int, multiple: bool) -> None:
        covered = {t for t in self.unacked if t <= tag} if multiple else {tag}
        assert covered <= self.unacked, "an ack named a tag that is not unacked"
        self.unacked -= covered
        self.acked += sorted(covered)


@given(st.data())
def test_ack_by_tag_never_acks_an_unseen_tag_and_acks_each_tag_once(data):
    """Over a channel's life: syncs ack tags the process has seen, in any order and
    with gaps (tags seen later, or never acked); the broker must end up with exactly
    the tags acked, each once, and no frame may cover a tag that was not acked."""
    delivered = data.draw(st.integers(1, 60))
    broker = Broker(delivered)
    floor, above = 0, set()
    wanted: set[int] = set()
    for _ in range(data.draw(st.integers(1, 6))):
        left = sorted(set(range(1, delivered + 1)) - wanted)
        if not left:
            break
        now = set(data.draw(st.lists(st.sampled_from(left), max_size=20)))
        f = ack_frames(now, floor, above)
        if f.multiple_to:
            # every tag the multiple frame covers is acked now or was before
            assert set(range(floor + 1, f.multiple_to + 1)) <= now | above | set(range(floor + 1))
            broker.ack(f.multiple_to, True)
        for tag in f.singles:
            broker.ack(tag, False)
        wanted |= now
        floor, above = f.floor, f.above
        assert all(t > floor for t in above)
    assert sorted(broker.acked) == sorted(wanted)  # each once: Broker refuses a repeat
    assert broker.unacked == set(range(1, delivered + 1)) - wanted


def msg(i, lane="normal", *, key=None, created=0, expires=None, redelivered=False, tag=None):
    return Taken(
        id=f"m{i}",
        lane=lane,
        tag=tag if tag is not None else i,
        redelivered=redelivered,
        body=b"{}",
        collapse_key=key,
        created_ms=created,
        expires_ms=expires,
    )


def test_held_messages_acked_leave_the_others_come_back_redelivered():
    held = [msg(1), msg(2), msg(3)]
    acked, kept, unknown = split_held(held, {"m2", "elsewhere"})
    assert [t.id for t in acked] == ["m2"]
    assert [(t.id, t.redelivered) for t in kept] == [("m1", True), ("m3", True)]
    assert unknown == {"elsewhere"}


def test_acks_of_messages_another_process_gave_are_found_at_the_head_of_a_lane():
    ahead = [msg(1), msg(2), msg(3), msg(4)]
    unknown = {"m2"}
    acked, fresh, rest = take_fresh(ahead, unknown, want=2)
    assert ([t.id for t in acked], [t.id for t in fresh], [t.id for t in rest]) == (
        ["m2"],
        ["m1", "m3"],
        ["m4"],
    )
    assert unknown == set()


def test_expired_and_copies_are_settled_never_returned():
    s = Settlement()
    high = [msg(1, "high", expires=1_000), msg(2, "high")]
    normal = [msg(3), msg(2, tag=9)]  # a second copy of m2
    kept = decide([high, normal], now_ms=1_000, settled=s)
    assert [t.id for t in kept] == ["m2", "m3"]
    assert [t.id for t in s.expired] == ["m1"]
    assert [t.tag for t in s.copies] == [9]
    assert s.counts() == {"acked": [], "expired": ["m1"], "collapsed": []}


def test_collapse_keeps_the_newest_and_never_drops_one_already_given():
    s = Settlement()
    live = [
        msg(1, key="k", created=1),
        msg(2, key="k", created=3),
        msg(3, key="k", created=2, redelivered=True),
        msg(4),
    ]
    kept = collapse(live, s)
    assert [t.id for t in kept] == ["m2", "m3", "m4"]
    assert [t.id for t in s.collapsed] == ["m1"]


def test_early_acks_are_not_acked_or_counted_twice():
    s = Settlement(acked=[msg(1), msg(2)])
    tags, ids = s.settle_early()
    assert (tags, ids) == ([1, 2], ["m1", "m2"])
    s.acked.append(msg(1, tag=7))  # the same id found again at the head of a lane
    assert s.tags() == [7]
    assert s.counts()["acked"] == []


messages = st.lists(
    st.builds(
        lambda i, lane, key, created, expires, redelivered: msg(
            i, lane, key=key, created=created, expires=expires, redelivered=redelivered
        ),
        st.integers(0, 30),
        st.sampled_from(["high", "normal"]),
        st.sampled_from([None, "a", "b"]),
        st.integers(0, 5),
        st.one_of(st.none(), st.integers(0, 10)),
        st.booleans(),
    ),
    max_size=40,
).map(lambda ms: [Taken(**{**m.__dict__, "tag": n + 1}) for n, m in enumerate(ms)])


@given(messages, st.integers(0, 10))
def test_every_message_is_either_returned_or_settled_once_and_returned_ones_are_live(taken, now_ms):
    s = Settlement()
    high = [t for t in taken if t.lane == "high"]
    normal = [t for t in taken if t.lane == "normal"]
    kept = decide([high, normal], now_ms, s)
    tags = [t.tag for t in kept] + s.tags()
    assert sorted(tags) == sorted(t.tag for t in taken)  # nothing lost, nothing twice
    assert all(t.expires_ms is None or t.expires_ms > now_ms for t in kept)
    assert len({t.id for t in kept}) == len(kept)  # one copy of an id
    fresh_keys = [t.collapse_key for t in kept if t.collapse_key and not t.redelivered]
    assert len(fresh_keys) == len(set(fresh_keys))  # one new message of a collapse key
    order = [t.tag for t in kept]
    assert order == sorted(order, key=lambda tag: (taken[tag - 1].lane != "high", tag))
