"""What one one-device wake job costs the wake worker: microseconds of its CPU a job.

    python -m bench.wake_cost [sends] [runs]   # defaults: 3,000 sends, 2 runs

Registers 1,000 devices with APNs tokens (none connected), starts the APNs stand-in
where the stack's wake worker expects it (bench/README.md), uploads its key, then in
each run sends `sends` notifications, each to one random device (one wake job each,
16 senders), and waits until the stand-in has every push. The wake worker's CPU
seconds (from /proc, harness.CpuMeter) over sends and wakes, divided by the sends, is
the figure. A warm-up of 200 sends first (not measured) makes the worker's APNs
client. Printed only, not merged into results/latest.json: a figure for comparing two
versions of the worker on one machine, run right after one another (the CPU a job
costs grows with the machine's load: print it beside)."""

from __future__ import annotations

import sys
import time

from bench import apns_standin, harness
from bench.apns_standin import ApnsStandin
from bench.harness import Fleet
from bench.send import send_rate

DEVICES = 1_000
SENDS = 3_000
RUNS = 2
WARM_UP = 200
LIMIT_S = 300


def warm_up(fleet: Fleet, standin: ApnsStandin) -> None:
    standin.reset()
    send_rate(fleet, WARM_UP)
    standin.wait_for(WARM_UP, LIMIT_S)


def measure(fleet: Fleet, standin: ApnsStandin, sends: int) -> dict:
    """One run: the wake worker's us of CPU a job (and the other parts'), the seconds
    from the first send until the stand-in had every push, and the load after."""
    harness.settle_broker()
    standin.reset()
    started = time.perf_counter()
    with harness.CpuMeter(standin.cpu_part()) as meter:
        send_rate(fleet, sends)
        summary = standin.wait_for(sends, LIMIT_S)
    took = time.perf_counter() - started
    if summary["statuses"] != {"200": sends}:
        raise SystemExit(f"the stand-in answered {summary['statuses']}")
    return {"us": meter.per(sends), "s": round(took, 1), "load": harness.load()}


def describe(run: dict, sends: int) -> str:
    us = run["us"]
    return (
        f"{sends} one-device wake jobs in {run['s']} s; wake worker"
        f" {us.get('wakes', 0):.0f} us CPU a job; api {us.get('api', 0):.0f},"
        f" mysql {us.get('mysql', 0):.0f}, redis {us.get('redis', 0):.0f},"
        f" rabbitmq {us.get('rabbitmq', 0):.0f} us; load {run['load']}"
    )


def main() -> None:
    sends = int(sys.argv[1]) if len(sys.argv) > 1 else SENDS
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else RUNS
    harness.check_stack()
    with (
        harness.fleet_of("wake_cost", DEVICES, push_tokens=True) as fleet,
        apns_standin.running() as standin,
    ):
        standin.upload_credentials(fleet.app["server_key"])
        warm_up(fleet, standin)
        for run in range(1, runs + 1):
            print(f"run {run}: {describe(measure(fleet, standin, sends), sends)}", flush=True)


if __name__ == "__main__":
    main()
