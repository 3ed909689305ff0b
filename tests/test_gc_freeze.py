"""pushbox_core.gc_freeze: what lives at a tick leaves the collector's sight until the
thaw, which collects everything once. The collector is the whole process's: each case
runs in a Python process of its own, not in pytest's (where freezing and collecting
would reach the other tests' objects, such as the stand-ins' coroutines)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import gc, time, weakref
from pushbox_core.gc_freeze import Freezer

class Node:
    pass

freezer = Freezer(freeze_every_s=60, thaw_every_s=1800)
"""


def run(case: str) -> None:
    code = PRELUDE + textwrap.dedent(case)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_what_lives_at_a_tick_is_frozen_until_the_thaw_collects_it():
    run(
        """
        node = Node()
        node.itself = node  # a cycle: only the collector frees it
        gone = weakref.ref(node)
        freezer.tick()
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert gone() is not None, "frozen: out of the collector's sight"

        freezer.tick(now=time.monotonic() + 1800)  # the thaw is due

        assert gone() is None
        assert gc.get_freeze_count() > 0, "what lives now is frozen again"
        """
    )


def test_young_garbage_is_collected_not_frozen():
    run(
        """
        gc.disable()  # no collection but the tick's
        node = Node()
        node.itself = node
        gone = weakref.ref(node)
        del node  # garbage already, still in the young generation
        freezer.tick()
        assert gone() is None
        """
    )


def test_a_thaw_comes_early_when_the_frozen_objects_grew_fourfold():
    """Closed streams' objects are frozen garbage: they must not pile up for the whole
    THAW_EVERY_S."""
    run(
        """
        import pushbox_core.gc_freeze as gc_freeze
        gc_freeze.THAW_FLOOR = 0
        freezer.tick()  # the first thaw: what lives now is the measure
        kept = gc.get_freeze_count()
        node = Node()
        node.itself = node
        gone = weakref.ref(node)
        freezer.tick()
        del node  # garbage, frozen
        many = [Node() for _ in range(4 * kept)]  # streams opened since
        freezer.tick()  # frozen now: more than four times the first thaw's
        assert gone() is not None
        freezer.tick()  # and so this one thaws, well before THAW_EVERY_S
        assert gone() is None
        """
    )
