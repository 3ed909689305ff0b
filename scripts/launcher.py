"""How supervisord starts each program of a stack (scripts/stack.py):

    python -m scripts.launcher PROGRAM [ARG...]

ends what earlier instances left behind, writes a line naming its pid to the
program's log, then becomes PROGRAM (exec: same pid, so supervisord, its `pid`
command and its signals all reach the program itself).

Left behind: a process killed outright leaves its children running, adopted by init.
nginx's workers go on serving the port, unsupervised, and the next nginx cannot bind
it; a gunicorn worker keeps the port until it notices its master is gone. Every
program of a stack runs in the session its supervisord opened, so a process of that
session whose parent is outside it is exactly such a leftover.

The start line lets a reader see each restart in a log, and lets `up()` read a
program's readiness from its current instance's output only."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STARTED = "pushbox: started pid"
LEFTOVERS_GONE_S = 2.0  # SIGKILL is not refused: this only waits out the kernel


@dataclass(frozen=True)
class Proc:
    """A process as /proc/<pid>/stat tells it."""

    pid: int
    state: str  # "Z": dead, waiting for its parent to reap it
    ppid: int
    pgrp: int
    session: int


def proc(pid: int) -> Proc | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name, in parentheses, may hold spaces and parentheses itself
    state, ppid, pgrp, session = text.rsplit(")", 1)[1].split()[:4]
    return Proc(pid, state, int(ppid), int(pgrp), int(session))


def processes() -> list[Proc]:
    """Every process of this machine that still exists (zombies included)."""
    found = (proc(int(d.name)) for d in Path("/proc").iterdir() if d.name.isdigit())
    return [p for p in found if p is not None]


def cmdline(pid: int) -> str:
    """Its command line, arguments joined by spaces ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running, not a zombie: a killed process stays in /proc until its parent reaps
    it, and the parent here (supervisord) is not the caller."""
    p = proc(pid)
    return p is not None and p.state != "Z"


def leftovers(session: int) -> list[int]:
    """Live processes of `session` whose parent is outside it, its leader aside."""
    procs = processes()
    members = {p.pid for p in procs if p.session == session}
    return [
        p.pid
        for p in procs
        if p.session == session and p.pid != session and p.state != "Z" and p.ppid not in members
    ]


def end(pids: list[int]) -> None:
    """SIGKILL each, and wait until they are gone (their ports with them)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + LEFTOVERS_GONE_S
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def end_leftovers() -> None:
    session = os.getsid(0)
    if os.getppid() != session:  # not started by a supervisord leading its own session:
        return  # the session may be a terminal's, with processes that are not ours
    end(leftovers(session))


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    end_leftovers()
    print(f"{STARTED} {os.getpid()}", flush=True)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
