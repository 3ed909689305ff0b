"""Group commit for round trips: what concurrent callers send to one server goes in one
round trip.

On this kind of machine a round trip to MySQL or Redis costs more CPU than most of
what a request does between them (about 150-220 us of the caller's CPU each, measured
with plain clients: docs/capacity.md), and N concurrent sends used to make N of each.
A Batcher has one worker thread (a greenlet under gevent) that takes every item
waiting, hands the list to its `run` function (one multi-row statement, one pipeline)
and gives each caller its own result. The first item goes at once and the items that
arrive while a batch is out go together in the next one; under load (the last batch
had company) the worker also lingers LINGER_S before taking a batch, so that requests
a step behind join it. At low load nothing waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

from pushbox_core.forks import ForkGuard

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - an item
R = TypeVar("R")

BATCH_MAX = 500
LINGER_S = 0.002  # measured: 2 ms made send batches ~2x larger than none (bench.send)
WAIT_MAX_S = 60.0  # run() times out on its own well before this; a dead worker doesn't
CLOSE_WAIT_S = 5.0


class Batcher(Generic[I, R]):
    def __init__(
        self,
        run: Callable[[list[I]], Sequence[R | Exception]],
        *,
        name: str,
        unavailable: Callable[[str], Exception],
        batch_max: int = BATCH_MAX,
        wait_max_s: float = WAIT_MAX_S,
    ):
        """`run(items)` returns one result per item, in order: a value, or an exception
        for that item alone. An exception raised by `run` fails every item of the batch;
        `unavailable(detail)` is what a caller gets if no answer comes in `wait_max_s`
        (more than a batch can take, waiting behind the one before it included)."""
        self._run = run
        self._unavailable = unavailable
        self._name = name
        self._batch_max = batch_max
        self._wait_max_s = wait_max_s
        self._cond = threading.Condition()
        self._items: list[tuple[I, Future | None]] = []
        self._worker: threading.Thread | None = None
        self._fork = ForkGuard()
        self._closed = False

    def __call__(self, item: I) -> R:
        """Send `item` with whatever else is waiting; its result, or its exception."""
        future: Future = Future()
        self._put(item, future)
        try:
            return future.result(self._wait_max_s)
        except FutureTimeout:
            raise self._unavailable(f"{self._name}: no answer in {self._wait_max_s:g} s") from None

    def submit(self, item: I) -> None:
        """Send `item` without waiting for it (errors are logged)."""
        self._put(item, None)

    def close(self) -> None:
        """Send what waits, then stop the worker. Later calls fail as unavailable;
        later submits are dropped (and logged)."""
        with self._cond:
            self._closed = True
            worker = self._worker
            self._cond.notify()
        if worker is not None and worker is not threading.current_thread():
            worker.join(CLOSE_WAIT_S)

    def _put(self, item: I, future: Future | None) -> None:
        with self._cond:
            if self._closed:
                if future is None:
                    log.warning("%s: closed; dropped an item", self._name)
                    return
                raise self._unavailable(f"{self._name}: closed")
            if self._fork.forked():  # the parent's items and worker are not ours
                self._items, self._worker = [], None
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._loop, daemon=True, name=self._name)
                self._worker.start()
            self._items.append((item, future))
            self._cond.notify()

    def _loop(self) -> None:
        busy = False
        while True:
            with self._cond:
                if not self._items:
                    busy = False  # idle: the next item goes at once
                    while not self._items:
                        if self._closed:
                            return
                        self._cond.wait()
            if busy:
                time.sleep(LINGER_S)
            with self._cond:
                batch = self._items[: self._batch_max]
                del self._items[: self._batch_max]
            busy = len(batch) > 1
            try:
                results = list(self._run([item for item, _ in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"{self._name}: {len(results)} results, {len(batch)} items")
            except Exception as e:  # noqa: BLE001 - handed to every caller of the batch
                results = [e] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future is None:
                    if isinstance(result, Exception):
                        log.warning("%s: %s", self._name, result)
                elif isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
