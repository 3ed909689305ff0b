"""`send_rate` of several stacks side by side, rounds interleaved: for comparing the
send path of two or more versions of Pushbox on one machine in one run.

    python -m bench.send_ab NAME='PUSH_...=... PUSH_...=...' [NAME='...' ...]

Each NAME is a running stack (started from its own checkout with `scripts.stack up`)
and the environment that reaches it: at least PUSH_BENCH_URL, PUSH_API_PORTS,
PUSH_NAMESPACE, PUSH_MYSQL_DATABASE, PUSH_RABBITMQ_URL and PUSH_ADMIN_TOKEN (each stack
its own names and ports; rate limits raised as in the Makefile's BENCH_ENV). Every
stack gets a fleet of AB_DEVICES devices (default 2,000: several stacks' lanes share
the broker) with one warm-up message in each high lane; then AB_ROUNDS rounds
(default 3), each running `bench.send.send_rate` (AB_SENDS sends, default 6,000, 16
senders, no push tokens) on every stack, in an order that alternates from round to
round, after the broker settled. Printed per round: sends/s and the CPU of that
stack's API processes (found by their ports) per send. docs/capacity.md has a run.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from bench import harness, send

DEVICES = int(os.environ.get("AB_DEVICES", "2000"))
ROUNDS = int(os.environ.get("AB_ROUNDS", "3"))
SENDS = int(os.environ.get("AB_SENDS", "6000"))


def _api_pids(env: dict[str, str]) -> list[int]:
    pids = []
    for port in env["PUSH_API_PORTS"].split(","):
        out = subprocess.run(
            ["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True
        ).stdout
        pids += [int(p) for p in out.split()]
    return pids


def _cpu_s(pids: list[int]) -> float:
    return sum(harness._cpu_s(pid) for pid in pids)


def main(argv: list[str]) -> None:
    stacks: dict[str, dict[str, str]] = {}
    for arg in argv:
        name, assignments = arg.split("=", 1)
        stacks[name] = dict(kv.split("=", 1) for kv in shlex.split(assignments))
    if len(stacks) < 2:
        raise SystemExit(__doc__)
    base = dict(os.environ)

    def use(name: str) -> None:  # the harness reads PUSH_* from the environment
        os.environ.clear()
        os.environ.update(base)
        os.environ.update(stacks[name])

    fleets: dict[str, harness.Fleet] = {}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in stacks}
    try:
        for name in stacks:
            use(name)
            fleets[name] = harness.new_fleet("ab", DEVICES)
            send.warm_up([d.id for d in fleets[name].devices])
        for r in range(ROUNDS):
            for name in list(stacks) if r % 2 == 0 else list(reversed(stacks)):
                use(name)
                harness.settle_broker()
                pids = _api_pids(stacks[name])
                before, load = _cpu_s(pids), os.getloadavg()[0]
                rate = send.send_rate(fleets[name], n=SENDS)
                us = (_cpu_s(pids) - before) / SENDS * 1e6
                results[name].append({"per_s": round(rate), "api_us": round(us), "load": load})
                print(f"round {r} {name}: {rate:.0f}/s, API {us:.0f} us a send, load {load:.1f}")
    finally:
        for name, fleet in fleets.items():
            use(name)
            harness.remove_fleet(fleet)
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
