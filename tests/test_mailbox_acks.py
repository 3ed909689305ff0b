"""Pure logic of the mailbox: acking by delivery tag in as few frames as possible."""

from __future__ import annotations

from device_registry.mailbox import ack_by_tag


class RecordingChannel:
    def __init__(self):
        self.acks: list[tuple[int, bool]] = []

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.acks.append((tag, multiple))


def acks(outstanding, to_ack):
    ch = RecordingChannel()
    ack_by_tag(ch, outstanding, to_ack)  # type: ignore[arg-type]
    return ch.acks


def test_acking_everything_outstanding_is_one_frame():
    assert acks([1, 2, 3, 4], [1, 2, 3, 4]) == [(4, True)]


def test_a_gap_splits_into_a_multiple_frame_and_singles():
    assert acks([1, 2, 3, 4, 5], [1, 2, 4]) == [(2, True), (4, False)]


def test_nothing_acked_sends_nothing_and_a_leading_gap_sends_singles():
    assert acks([1, 2], []) == []
    assert acks([1, 2, 3], [2, 3]) == [(2, False), (3, False)]
