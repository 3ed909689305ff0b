"""Batcher: concurrent callers' items go out together, each caller gets its own result."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from pushbox_core.batching import Batcher
from pushbox_core.errors import DatabaseUnavailable


class SlowDouble:
    """A `run` that records each batch and takes a while, as a round trip does."""

    def __init__(self, seconds: float = 0.05):
        self.seconds = seconds
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        time.sleep(self.seconds)
        return [ValueError(f"odd {i}") if i % 2 else i * 2 for i in items]


def call_all(batcher: Batcher, items: list[int]) -> dict[int, object]:
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            results[i] = batcher(i)
        except Exception as e:  # noqa: BLE001 - recorded for the assertions
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_items_that_arrive_while_a_batch_is_out_go_together():
    run = SlowDouble()
    batcher = Batcher(run, name="test", unavailable=DatabaseUnavailable)
    results = call_all(batcher, list(range(0, 40, 2)))
    assert results == {i: i * 2 for i in range(0, 40, 2)}
    assert sorted(i for b in run.batches for i in b) == list(range(0, 40, 2))
    assert len(run.batches) < 20  # 20 callers, fewer round trips
    assert max(len(b) for b in run.batches) > 1


def test_an_item_that_fails_fails_only_its_own_caller():
    batcher = Batcher(SlowDouble(), name="test", unavailable=DatabaseUnavailable)
    results = call_all(batcher, [1, 2, 3, 4])
    assert results[2] == 4 and results[4] == 8
    assert isinstance(results[1], ValueError) and str(results[1]) == "odd 1"
    assert isinstance(results[3], ValueError)


def test_a_failed_round_trip_fails_its_batch_and_the_next_one_goes_through():
    calls = []

    def run(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise DatabaseUnavailable("cut")
        return items

    batcher = Batcher(run, name="test", unavailable=DatabaseUnavailable)
    with pytest.raises(DatabaseUnavailable):
        batcher(1)
    assert batcher(2) == 2


def test_a_run_that_answers_the_wrong_number_of_items_is_an_error_not_a_mixup():
    batcher = Batcher(lambda items: [], name="test", unavailable=DatabaseUnavailable)
    with pytest.raises(RuntimeError, match="0 results, 1 items"):
        batcher(1)


def test_submit_does_not_wait_and_logs_a_failure(caplog):
    done = threading.Event()

    def run(items: list[str]) -> list[object]:
        done.set()
        return [ValueError("no luck") for _ in items]

    batcher = Batcher(run, name="wakes", unavailable=DatabaseUnavailable)
    with caplog.at_level(logging.WARNING, logger="pushbox_core.batching"):
        batcher.submit("x")
        assert done.wait(5)
        for _ in range(50):
            if "no luck" in caplog.text:
                break
            time.sleep(0.02)
    assert "wakes: no luck" in caplog.text


def test_close_sends_what_waits_then_stops_the_worker():
    sent: list[str] = []
    gate = threading.Event()

    def run(items: list[str]) -> list[None]:
        gate.wait(5)  # the first batch is out while more items arrive
        sent.extend(items)
        return [None] * len(items)

    batcher = Batcher(run, name="wakes", unavailable=DatabaseUnavailable)
    batcher.submit("a")
    batcher.submit("b")
    worker = batcher._worker
    assert worker is not None
    gate.set()
    batcher.close()
    assert sent == ["a", "b"] and not worker.is_alive()
    with pytest.raises(DatabaseUnavailable):
        batcher("late")
    batcher.submit("dropped")  # logged, not sent, no new worker
    assert sent == ["a", "b"] and batcher._worker is worker
