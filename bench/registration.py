"""Registration rate: devices/s through nginx, 8 concurrent clients, 5,000 devices.

Baseline, same run and concurrency: raw pika doing what registration does on the
broker for one device (both lane queues declared with the same arguments, each bound to
the app's broadcast exchange and to the direct exchange by device key), on 8 threads,
each with its own connection."""

from __future__ import annotations

import time
import uuid

from bench import harness
from bench.harness import Figure, Fleet
from device_registry.topology import Topology
from pushbox_core.names import LANES
from pushbox_core.rabbit import Rabbit

DEVICES = min(5_000, harness.FLEET_SIZE)
CONCURRENCY = 8


def raw_declare_rate(n: int = DEVICES, concurrency: int = CONCURRENCY) -> float:
    s = harness.settings()
    args = Topology(Rabbit(s.broker_urls), harness.names(s), s).queue_arguments()
    tag = uuid.uuid4().hex[:8]
    fanout = {lane: f"bench.raw.{tag}.broadcast.{lane}" for lane in LANES}
    direct = {lane: f"bench.raw.{tag}.direct.{lane}" for lane in LANES}
    ch = harness.rabbit_channel(s)
    for lane in LANES:
        ch.exchange_declare(fanout[lane], "fanout", durable=True)
        ch.exchange_declare(direct[lane], "direct", durable=True)
    queues = [f"bench.raw.{tag}.device.{i}.{lane}" for i in range(n) for lane in LANES]

    def work(part: list[int]) -> None:
        c = harness.rabbit_channel(s)
        try:
            for i in part:
                for lane in LANES:
                    q = f"bench.raw.{tag}.device.{i}.{lane}"
                    c.queue_declare(q, durable=True, arguments=args)
                    c.queue_bind(q, fanout[lane])
                    c.queue_bind(q, direct[lane], f"device.{i}")
        finally:
            harness.close_channel(c)

    started = time.perf_counter()
    harness.in_threads(list(range(n)), concurrency, work)
    seconds = time.perf_counter() - started
    print("  removing the raw baseline's queues ...", flush=True)
    harness.delete_queues(queues)
    for lane in LANES:
        ch.exchange_delete(fanout[lane])
        ch.exchange_delete(direct[lane])
    harness.close_channel(ch)
    return n / seconds


def pushbox_rate(fleet: Fleet) -> float:
    """Registers DEVICES into the fleet (kept); devices/s."""
    print(f"registration: {DEVICES} devices, {CONCURRENCY} clients ...", flush=True)
    rate = DEVICES / harness.register(fleet, DEVICES, CONCURRENCY)
    print(f"  pushbox: {rate:.0f} devices/s", flush=True)
    return rate


def figure(rate: float, raw: float) -> Figure:
    return Figure(
        "registration_rate",
        rate,
        "devices/s",
        raw,
        "raw pika: both lane queues declared + 2 bindings each, 8 threads",
        True,
        command=harness.command("registration"),
        target=">= 0.5x raw",
        met=rate >= 0.5 * raw,
        detail={"devices": DEVICES, "concurrency": CONCURRENCY},
    )


def run() -> list[Figure]:
    with harness.fleet_of("registration", 0) as fleet:
        rate = pushbox_rate(fleet)
    print("  raw declare + bind ...", flush=True)
    return [figure(rate, raw_declare_rate())]


if __name__ == "__main__":
    harness.check_stack()
    harness.finish(run())
