"""Targeted send rate: notifications/s through nginx to random devices among 10,000,
16 concurrent senders, each answer meaning the broker confirmed the message.

Baselines, same run: (1) `send_bound` (the target is >= 0.5x of it, issue "Campaigns
and bulk sends"), built from our HTTP ceiling, `GET /healthz` through the same nginx and
instances at the same concurrency with the same client (`healthz_per_s` in the detail),
and a raw confirmed publish, see below; (2) raw pika persistent,
mandatory publishes to the same direct exchange and routing keys, 1,000 confirms in
flight on one channel (and, in the detail, 16 in flight: the senders' concurrency).
The detail also says where the CPU went: microseconds of CPU per send (and per
healthz request and raw publish) of each part of the stack, measured around each run,
and the `send_bound`: the most sends per second these cores could do if a send cost only a
healthz request plus a raw confirmed publish at 16 in flight (with the bench client's
own CPU, which shares the machine), and that as a ratio to the ceiling.

`detail.at_target`: what a send could cost the API at the target (0.5x `send_bound`, so
twice the bound's CPU in all) once the rest of the stack is paid, counting the broker at
what raw publishes from 16 senders (one confirm at a time each) paced at the target's
rate cost it (`detail.raw_publish_paced_at_target_rate`) and the other parts as the
sends cost them; beside it, what a healthz request costs the API.

`send_rate_with_tokens`: right after `send_rate`, the same sends to the same devices once
each has an APNs token (so each send also queues a wake job, and the wake worker pushes
to the APNs stand-in meanwhile, on the same cores), beside `send_rate` of the same run
(see `with_tokens`; bench/README.md on the stand-in).

Every device's high lane gets one raw message first, not measured: the first
persistent message into a classic queue costs the broker far more than the next ones
(it creates the queue's index files), and whichever run came first paid it for the
others (raw publishing with 1,000 confirms in flight: 1,327/s into queues that mostly
had never held a message, 4,730/s into warmed ones)."""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import apns_standin, harness
from bench.apns_standin import StepFailed
from bench.client import Answer, Connection, bearer
from bench.harness import Figure, Fleet

SENDERS = 16
SENDS = 6_000
CEILING_REQUESTS = 10_000
RAW_PUBLISHES = 5_000
RAW_IN_FLIGHT = 1_000
PACED_PUBLISHES = SENDS  # the same count as the sends: their settling tails weigh alike
WAKE_LIMIT_S = 300  # after the sends with tokens, until the stand-in has every push


async def _hammer(
    n: int, concurrency: int, call: Callable[[Connection, int], object]
) -> tuple[float, collections.Counter]:
    left = iter(range(n))
    statuses: collections.Counter = collections.Counter()

    async def client() -> None:
        c = Connection(harness.base_url())
        try:
            for i in left:
                a = await call(c, i)  # type: ignore[misc]
                assert isinstance(a, Answer)
                statuses[a.status] += 1
        finally:
            c.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started, statuses


def hammer(n: int, concurrency: int, call) -> tuple[float, collections.Counter]:
    return asyncio.run(_hammer(n, concurrency, call))


def http_ceiling(n: int = CEILING_REQUESTS, concurrency: int = SENDERS) -> float:
    seconds, statuses = hammer(n, concurrency, lambda c, i: c.request("GET", "/healthz"))
    if set(statuses) != {200}:
        raise RuntimeError(f"healthz answered {dict(statuses)}")
    return n / seconds


def send_rate(fleet: Fleet, n: int = SENDS, concurrency: int = SENDERS) -> float:
    ids = [d.id for d in fleet.devices]
    rng = random.Random(5)
    targets = [rng.choice(ids) for _ in range(n)]
    auth = bearer(fleet.app["server_key"])

    def call(c: Connection, i: int):
        body = {
            "to": {"device_id": targets[i]},
            "title": f"order {i}",
            "body": harness.PAYLOAD_TEXT,
        }
        return c.request("POST", "/v1/notifications", body, auth)

    seconds, statuses = hammer(n, concurrency, call)
    if set(statuses) != {202}:
        raise RuntimeError(f"notifications answered {dict(statuses)}")
    return n / seconds


def raw_batch(device_ids: Sequence[str], n: int = RAW_PUBLISHES) -> list[tuple[str, bytes, Any]]:
    """n messages in Pushbox's wire format to random devices' high lanes."""
    nm = harness.names()
    rng = random.Random(7)
    batch = []
    for _ in range(n):
        body, props = harness.pushbox_message("notification")
        batch.append((nm.device_key(rng.choice(device_ids)), body, props))
    return batch


def raw_publish_rate(batch: list[tuple[str, bytes, Any]], window: int = RAW_IN_FLIGHT) -> float:
    """Persistent, mandatory publishes to the high lane's direct exchange (where a
    notification goes), `window` confirms in flight."""
    exchange = harness.names().direct_exchange("high")
    return len(batch) / harness.publish_many(exchange, batch, window=window)


def raw_paced(device_ids: Sequence[str], rate: float, n: int = PACED_PUBLISHES) -> dict:
    """Broker CPU of raw persistent, mandatory publishes to the same exchange and random
    devices, one confirm at a time, paced at `rate` (the send rate just measured): what
    the broker charges for messages that arrive at that pace, counting the work it
    goes on doing after the last one (until it is quiet again)."""
    nm = harness.names()
    exchange = nm.direct_exchange("high")
    rng = random.Random(9)
    ch = harness.rabbit_channel(confirm=True)
    try:
        with harness.CpuMeter() as meter:
            started = time.perf_counter()
            for k in range(n):
                time.sleep(max(0.0, started + k / rate - time.perf_counter()))
                body, props = harness.pushbox_message("notification")
                key = nm.device_key(rng.choice(device_ids))
                ch.basic_publish(exchange, key, body, props, mandatory=True)
            seconds = time.perf_counter() - started
            harness.settle_broker()
    finally:
        harness.close_channel(ch)
    return {
        "rate": round(n / seconds),
        "publishes": n,
        "broker_cpu_us_per_publish": round(meter.seconds.get("rabbitmq", 0.0) / n * 1e6, 1),
    }


def raw_paced_senders(
    device_ids: Sequence[str], rate: float, n: int = PACED_PUBLISHES, senders: int = SENDERS
) -> dict:
    """As raw_paced, from `senders` connections each with one confirm at a time (as many
    publishes in flight as the senders have sends), together paced at `rate`: what the
    broker charges a message arriving as the sends' messages would at that rate."""
    nm = harness.names()
    exchange = nm.direct_exchange("high")
    channels = [harness.rabbit_channel(confirm=True) for _ in range(senders)]
    started = 0.0

    def publish(k: int, ch: Any) -> None:
        rng = random.Random(11 + k)
        for j in range(k, n, senders):
            time.sleep(max(0.0, started + j / rate - time.perf_counter()))
            body, props = harness.pushbox_message("notification")
            key = nm.device_key(rng.choice(device_ids))
            ch.basic_publish(exchange, key, body, props, mandatory=True)

    try:
        with harness.CpuMeter() as during:
            started = time.perf_counter()
            with ThreadPoolExecutor(senders) as pool:
                list(pool.map(publish, range(senders), channels))
            seconds = time.perf_counter() - started
        with harness.CpuMeter() as after:
            harness.settle_broker()
    finally:
        for ch in channels:
            harness.close_channel(ch)
    broker_s = during.seconds.get("rabbitmq", 0.0)
    return {
        "rate": round(n / seconds),
        "publishes": n,
        "senders": senders,
        "broker_cpu_us_per_publish": round(broker_s / n * 1e6, 1),
        "broker_cpu_us_per_publish_with_after": round(
            (broker_s + after.seconds.get("rabbitmq", 0.0)) / n * 1e6, 1
        ),
    }


def api_budget(bound: dict, send_us: dict[str, float], broker_at_target_us: float) -> dict:
    """What a send could cost the API at the target (0.5x the bound: twice the bound's
    CPU a send, in all) once the other parts are paid: the broker as raw publishes paced
    at the target's rate cost it, the rest as the measured sends cost them."""
    allowed = 2 * bound["cpu_us_healthz_plus_publish"]
    others = {p: send_us.get(p, 0.0) for p in ("bench client", "nginx", "mysql", "redis")}
    others["rabbitmq"] = broker_at_target_us
    return {
        "cpu_us_per_send_allowed": round(allowed),
        "cpu_us_per_send_outside_api": round(sum(others.values())),
        "api_cpu_us_per_send_left": round(allowed - sum(others.values())),
    }


def warm_up(device_ids: Sequence[str]) -> None:
    """One raw message into every device's high lane (see the module's docstring)."""
    nm = harness.names()
    body, props = harness.pushbox_message("notification")
    batch = [(nm.device_key(i), body, props) for i in device_ids]
    harness.publish_many(nm.direct_exchange("high"), batch)


def send_bound(healthz_us: dict[str, float], publish_us: dict[str, float], ceiling: float) -> dict:
    """The most sends/s these cores could do if a send cost no more than one healthz
    request (its CPU in the client, nginx and the API) plus one raw confirmed persistent
    publish at the senders' concurrency (in the client and the broker), every core busy:
    no MySQL row, no validation, no rate limit. Parts idle in a run are not counted."""
    cpu_us = sum(healthz_us.get(p, 0.0) for p in ("bench client", "nginx", "api")) + sum(
        publish_us.get(p, 0.0) for p in ("bench client", "rabbitmq")
    )
    cores = len(os.sched_getaffinity(0))
    best = cores * 1e6 / cpu_us
    return {
        "cpu_us_healthz_plus_publish": round(cpu_us, 1),
        "cores": cores,
        "max_sends_per_s": round(best),
        "max_ratio_to_ceiling": round(best / ceiling, 2),
    }


def run(fleet: Fleet | None = None) -> list[Figure]:
    with harness.fleet_of("send", harness.FLEET_SIZE, fleet) as f:
        print(f"send: {SENDS} notifications, {SENDERS} senders, {len(f.devices)} devices ...")
        ids = [d.id for d in f.devices]
        print("  warming the device queues up (one raw message each, not measured) ...")
        warm_up(ids)
        settled = [harness.settle_broker()]
        with harness.CpuMeter() as sending:
            rate = send_rate(f)
        print(f"  pushbox: {rate:.0f}/s; with APNs tokens ...", flush=True)
        with harness.CpuMeter() as after_sending:  # the broker's work the sends left
            settled.append(harness.settle_broker())
        broker_us_per_send = (
            (sending.seconds.get("rabbitmq", 0.0) + after_sending.seconds.get("rabbitmq", 0.0))
            / SENDS
            * 1e6
        )
        [tokens] = harness.record([with_tokens(f, rate, sending.per(SENDS))])
        print("  HTTP ceiling ...", flush=True)
        settled.append(harness.settle_broker())
        with harness.CpuMeter() as answering:
            ceiling = http_ceiling()
        print(f"  healthz: {ceiling:.0f}/s; raw publish ...", flush=True)
        settled.append(harness.settle_broker())
        batch = raw_batch(ids)
        with harness.CpuMeter() as publishing:
            raw = raw_publish_rate(batch)
        settled.append(harness.settle_broker())
        batch = raw_batch(ids)
        with harness.CpuMeter() as publishing_alike:
            raw_alike = raw_publish_rate(batch, window=SENDERS)
        print(f"  raw publish: {raw:.0f}/s ({raw_alike:.0f}/s with {SENDERS} in flight)")
        settled.append(harness.settle_broker())
        paced = raw_paced(ids, rate)
        print(
            f"  broker CPU a send: {broker_us_per_send:.0f} us; a raw publish at the same pace:"
            f" {paced['broker_cpu_us_per_publish']:.0f} us"
        )
        cmd = harness.command("send")
        alike_us = publishing_alike.per(RAW_PUBLISHES)
        healthz_us = answering.per(CEILING_REQUESTS)
        best = send_bound(healthz_us, alike_us, ceiling)
        print(
            "  bound: a healthz request + a raw publish cost"
            f" {best['cpu_us_healthz_plus_publish']:.0f} us of CPU:"
            f" at most {best['max_sends_per_s']}/s on {best['cores']} cores"
            f" ({best['max_ratio_to_ceiling']}x the ceiling)"
        )
        settled.append(harness.settle_broker())
        at_target = raw_paced_senders(ids, 0.5 * best["max_sends_per_s"])
        budget = api_budget(best, sending.per(SENDS), at_target["broker_cpu_us_per_publish"])
        print(
            f"  at the target's rate ({at_target['rate']}/s) a raw publish from {SENDERS}"
            f" senders cost the broker {at_target['broker_cpu_us_per_publish']:.0f} us;"
            f" with the send's other parts, {budget['cpu_us_per_send_outside_api']} us"
            f" of the {budget['cpu_us_per_send_allowed']} a send may cost: the API would"
            f" have {budget['api_cpu_us_per_send_left']} us (a healthz request cost it"
            f" {healthz_us.get('api', 0.0):.0f})"
        )
        detail = {
            "senders": SENDERS,
            "sends": SENDS,
            "devices": harness.FLEET_SIZE,
            "healthz_per_s": round(ceiling),
            f"raw_publish_{SENDERS}_in_flight": round(raw_alike),
            "cpu_us_per_send": sending.per(SENDS),
            "cpu_us_per_healthz": answering.per(CEILING_REQUESTS),
            "cpu_us_per_raw_publish": publishing.per(RAW_PUBLISHES),
            f"cpu_us_per_raw_publish_{SENDERS}_in_flight": alike_us,
            "send_bound": best,
            "broker_cpu_us_per_send_with_after": round(broker_us_per_send, 1),
            "raw_publish_paced_at_send_rate": paced,
            "raw_publish_paced_at_target_rate": at_target,
            "at_target": budget,
            "broker_settle_s": [round(x, 1) for x in settled],
        }
        return harness.record(
            [
                Figure(
                    "send_rate",
                    rate,
                    "msgs/s",
                    best["max_sends_per_s"],
                    "send_bound: the most sends/s these cores could do if a send cost one"
                    " GET /healthz (16 clients, same nginx + instances) plus one raw"
                    f" confirmed publish ({SENDERS} in flight)",
                    True,
                    command=cmd,
                    target=">= 0.5x send_bound",
                    met=rate >= 0.5 * best["max_sends_per_s"],
                    detail=detail,
                ),
                Figure(
                    "send_rate_vs_raw_publish",
                    rate,
                    "msgs/s",
                    raw,
                    "raw pika persistent mandatory publish, same exchange, 1,000 confirms in"
                    " flight",
                    True,
                    command=cmd,
                    detail={**detail, "raw_publishes": RAW_PUBLISHES},
                ),
                tokens,
            ]
        )


def with_tokens(f: Fleet, without: float, without_us: dict[str, float]) -> Figure:
    """send_rate again, measured the same way, once every device has an APNs token: each
    send also queues a wake job, and the wake worker pushes to the APNs stand-in while
    the sends go on (it shares the cores). Then the time until the stand-in has every
    push, and the CPU of all that per send."""
    detail: dict[str, Any] = {"senders": SENDERS, "sends": SENDS, "devices": len(f.devices)}
    try:
        with apns_standin.running() as standin:
            if any(d.push_token is None for d in f.devices):
                started = time.perf_counter()
                harness.give_push_tokens(f.devices)
                detail["giving_tokens_s"] = round(time.perf_counter() - started, 1)
            standin.upload_credentials(f.app["server_key"])
            detail["broker_settle_s"] = round(harness.settle_broker(), 1)
            standin.reset()
            with harness.CpuMeter(standin.cpu_part()) as sending:
                rate = send_rate(f)
            with harness.CpuMeter(standin.cpu_part()) as waking:
                started = time.perf_counter()
                summary = standin.wait_for(SENDS, WAKE_LIMIT_S)
                behind_s = time.perf_counter() - started
            if summary["statuses"] != {"200": SENDS}:
                raise StepFailed(f"the stand-in answered {summary['statuses']}")
    except StepFailed as e:
        print(f"  with tokens: NOT MEASURED: {e}", flush=True)
        return _with_tokens_figure(None, without, {**detail, "failure": str(e)})
    both = {
        part: round((sending.seconds.get(part, 0.0) + waking.seconds.get(part, 0.0)) / SENDS * 1e6)
        for part in {**sending.seconds, **waking.seconds}
    }
    print(
        f"  with tokens: {rate:.0f}/s (without: {without:.0f}/s); the last wake"
        f" {behind_s:.1f} s after the last send",
        flush=True,
    )
    detail.update(
        {
            "cpu_us_per_send": sending.per(SENDS),
            "cpu_us_per_send_without_tokens": without_us,
            "cpu_us_per_send_with_wakes_after": both,
            "wakes": SENDS,
            "wakes_done_s_after_sends": round(behind_s, 2),
            "wakes_from_first_push_per_s": round(
                SENDS / (summary["last_at"] - summary["first_at"])
            ),
            "load": harness.load(),
        }
    )
    return _with_tokens_figure(rate, without, detail)


def _with_tokens_figure(value: float | None, without: float, detail: dict) -> Figure:
    return Figure(
        "send_rate_with_tokens",
        value,
        "msgs/s",
        without,
        "send_rate in the same run: the same sends to the same devices before they had tokens",
        True,
        command=harness.command("send"),
        detail=detail,
    )


if __name__ == "__main__":
    harness.check_stack()
    harness.finish(run())
