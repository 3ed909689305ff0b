"""Noticing a fork. gunicorn may fork after a connection pool, a batcher's thread or a
publisher's link was made in the parent: a child must forget them (never close them:
they are the parent's) and start its own."""

from __future__ import annotations

import os


class ForkGuard:
    def __init__(self) -> None:
        self._pid = os.getpid()

    def forked(self) -> bool:
        """True once in a forked child, the first time it asks; the guard is then the
        child's."""
        pid = os.getpid()
        if pid == self._pid:
            return False
        self._pid = pid
        return True

    @property
    def ours(self) -> bool:
        """Whether the process asking is the one the guarded state belongs to."""
        return self._pid == os.getpid()
