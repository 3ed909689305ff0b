"""`make bench`: every figure, one run, one fleet of 10,000 devices shared where the
figures allow; prints the table and writes each figure to bench/results/latest.json as
soon as it is measured.

`python -m bench wakeup waiting send`: the registration, fleet and idle-cost figures,
then only the named modules (of those below) on the same fleet; drain and events_drain
only when named."""

from __future__ import annotations

import json
import sys
import time

from bench import (
    batch,
    broadcast,
    campaign,
    drain,
    events_drain,
    harness,
    idle_cost,
    registration,
    send,
    stream,
    waiting,
    wake_rate,
    wakeup,
)
from bench.harness import Figure

FLEET_MODULES = {
    "wakeup": wakeup,
    "waiting": waiting,
    "stream": stream,
    "send": send,
    "batch": batch,
    "broadcast": broadcast,
    "campaign": campaign,
    "wake_rate": wake_rate,
}
ALONE_MODULES = {"drain": drain, "events_drain": events_drain}


def main(only: list[str]) -> None:
    unknown = set(only) - set(FLEET_MODULES) - set(ALONE_MODULES)
    if unknown:
        raise SystemExit(f"unknown modules: {' '.join(sorted(unknown))}")
    harness.check_stack()
    started = time.monotonic()
    figures: list[Figure] = []

    def keep(new: list[Figure]) -> None:
        """Kept as they come, so that a run cut short still leaves its figures (the
        modules record each figure when it is measured; what they did not is now)."""
        figures.extend(harness.record(new))

    # the raw baseline first, into the same broker the fleet then registers into (with
    # the fleet there too, a cluster of quorum lanes would hold twice its queues)
    print("registration: raw declare + bind ...", flush=True)
    raw_declare = registration.raw_declare_rate()
    before = idle_cost.snapshot()
    fleet = harness.new_fleet("bench", 0)
    try:
        rate = registration.pushbox_rate(fleet)  # its 5,000 devices join the fleet
        rest = harness.FLEET_SIZE - len(fleet.devices)
        print(f"fleet: registering {rest} more devices ...", flush=True)
        harness.register(fleet, rest, 16)
        after = idle_cost.snapshot()
        print("idle cost: opening a session for every device ...", flush=True)
        harness.open_sessions(fleet.devices)
        idle = idle_cost.figures(fleet, before, after, idle_cost.redis_used())
        keep([registration.figure(rate, raw_declare), *idle])
        # stream before send and broadcast, which leave messages in every device's lanes
        # (each open stream would be handed its backlog first); send gives every device
        # an APNs token (for its second figure); broadcast asks for no wakes, and
        # wake_rate wakes them all
        for name, module in FLEET_MODULES.items():
            if not only or name in only:
                keep(module.run(fleet))
    finally:
        print("removing the fleet ...", flush=True)
        harness.remove_fleet(fleet)
    for name, alone in ALONE_MODULES.items():
        if not only or name in only:
            keep(alone.run())
    print(f"\nPushbox benchmarks ({time.monotonic() - started:.0f} s):\n")
    order = [f["name"] for f in json.loads(harness.LATEST.read_text())["figures"]]
    figures.sort(key=lambda f: order.index(f.name) if f.name in order else len(order))
    harness.finish(figures)


if __name__ == "__main__":
    main(sys.argv[1:])
