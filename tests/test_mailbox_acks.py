"""Pure logic of the mailbox: acking by delivery tag in as few frames as is safe.

Delivery tags count up by one with every delivery on a channel, so a `multiple` ack
may only cover a run of tags this process knows it is acking: a missing tag is a
delivery it has not seen yet, and acking it would drop a message the device never got."""

from __future__ import annotations

from device_registry.mailbox import ack_by_tag


class RecordingChannel:
    def __init__(self):
        self.acks: list[tuple[int, bool]] = []

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.acks.append((tag, multiple))


def acks(to_ack, floor=0, acked=None):
    ch = RecordingChannel()
    new_floor = ack_by_tag(ch, to_ack, floor, acked)
    return ch.acks, new_floor


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
    assert acks([1, 2], acked={3}) == ([(2, True)], 2)
