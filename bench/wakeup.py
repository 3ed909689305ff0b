"""Wake-up latency: p50/p95/p99 from a send to a waiting device's answer, with 1,000
devices waiting at once (long-polling syncs, `wait` 30 s, through nginx).

Every waiting device holds one keep-alive connection of one asyncio client; when a
device is answered it syncs again at once (acking what it got), so the number waiting
stays constant. SAMPLES notifications go, one each to distinct waiting devices, paced
at PACE_PER_S; a sample's latency runs from the start of its send request to the
moment its device's answer arrives. At the end every device hangs up (what it got is
acked already by its next sync), and the bench waits for the server's side of the
waits to run out.

Baseline, same run: raw pika, persistent publishes (each confirmed) to a `bench.`
queue with a live consumer, at the same pace; latency from publish to delivery."""

from __future__ import annotations

import asyncio
import collections
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench import harness
from bench.client import Connection, HttpError, bearer
from bench.harness import Device, Figure, Fleet

WAITING = 1_000
SAMPLES = 1_000
PACE_PER_S = 100
WAIT_S = 20
SENDERS = 8
RAMP_PER_S = 500  # devices starting to wait per second
RAMP_STEP = 50
SEND_TIMEOUT_S = 10.0  # a send not answered by then is an error of the run
RUN_TIMEOUT_S = 240.0  # a whole run (a step of bench.waiting): past it, it failed


@dataclass
class WaitRun:
    waiting: int
    latencies_ms: list[float] = field(default_factory=list)
    missing: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    send_ms: list[float] = field(default_factory=list)  # how long the send requests took
    after_answer_ms: list[float] = field(default_factory=list)  # arrival after the answer

    def p(self, q: float) -> float:
        """Percentile, counting samples never answered as infinitely late."""
        values = self.latencies_ms + [float("inf")] * self.missing
        return harness.percentile(values, q)

    def summary(self) -> dict:
        return {
            "waiting": self.waiting,
            "samples": len(self.latencies_ms) + self.missing,
            "p50_ms": round(self.p(50), 2),
            "p95_ms": round(self.p(95), 2),
            "p99_ms": round(self.p(99), 2),
            "max_ms": round(self.p(100), 2),
            "unanswered": self.missing,
            "errors": dict(self.errors),
        } | self._parts()

    def _parts(self) -> dict:
        """The send request is part of each latency: how long it took, and how long
        after its answer the message arrived (0 when it came first)."""
        if not self.send_ms:
            return {}
        return {
            "send_request_p50_ms": round(harness.percentile(self.send_ms, 50), 2),
            "send_request_p99_ms": round(harness.percentile(self.send_ms, 99), 2),
            "after_answer_p50_ms": round(harness.percentile(self.after_answer_ms, 50), 2),
            "after_answer_p99_ms": round(harness.percentile(self.after_answer_ms, 99), 2),
        }


async def _measure(
    fleet: Fleet, devices: Sequence[Device], samples: int, pace: float, settle_s: float
) -> WaitRun:
    base = harness.base_url()
    result = WaitRun(len(devices))
    answered: dict[str, float] = {}

    async def device_loop(d: Device) -> None:
        assert d.token is not None
        c = Connection(base)
        ack: list[str] = []
        try:
            while True:
                body = {"ack": ack, "max": 100, "wait": WAIT_S}
                a = await c.request(
                    "POST", "/v1/device/sync", body, bearer(d.token), timeout=WAIT_S + 20
                )
                now = time.perf_counter()
                if a.status != 200:
                    result.errors[f"sync {a.status} {a.body[:90]!r}"] += 1
                    await asyncio.sleep(1)
                    continue
                messages = a.json()["messages"]
                for m in messages:
                    answered.setdefault(m["id"], now)
                ack = [m["id"] for m in messages]
        except HttpError as e:
            result.errors[str(e).split(":", 1)[-1].strip()[:60]] += 1
        finally:
            c.close()

    tasks = []
    for i, d in enumerate(devices):
        tasks.append(asyncio.create_task(device_loop(d)))
        if i % RAMP_STEP == RAMP_STEP - 1:
            await asyncio.sleep(RAMP_STEP / RAMP_PER_S)  # not a thundering herd
    await asyncio.sleep(settle_s)

    targets = random.Random(11).sample(list(devices), min(samples, len(devices)))
    await paced_sends(fleet, targets, pace, result, answered, title="wake")

    # stop: hang up; what a device was sent is acked already (by its next sync), and
    # the server ends its side of each wait when the wait runs out
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(WAIT_S + 2)
    return result


async def paced_sends(
    fleet: Fleet,
    targets: Sequence[Device],
    pace: float,
    result: WaitRun,
    arrived: dict[str, float],
    *,
    title: str,
    late_s: float = 5.0,
) -> None:
    """One notification to each target at `pace` from SENDERS keep-alive connections;
    each latency runs from the start of its send request to its arrival (`arrived`,
    message id: when, filled in by whoever receives); one not there `late_s` after the
    last send counts as unanswered. Into `result`, with the send requests' durations."""
    auth = bearer(fleet.app["server_key"])
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(SENDERS):
        pool.put_nowait(Connection(harness.base_url()))
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.1

    async def send(k: int, d: Device) -> None:
        await asyncio.sleep(max(0.0, t0 + k / pace - loop.time()))
        c = await pool.get()
        try:
            started = time.perf_counter()
            a = await c.request(
                "POST",
                "/v1/notifications",
                {"to": {"device_id": d.id}, "title": title},
                auth,
                timeout=SEND_TIMEOUT_S,
            )
            if a.status == 202:
                sent[a.json()["id"]] = started
                answered[a.json()["id"]] = time.perf_counter()
                result.send_ms.append((answered[a.json()["id"]] - started) * 1000)
            else:
                result.errors[f"send {a.status}"] += 1
        except HttpError as e:  # a failed step, not a failed benchmark (nginx out of connections)
            result.errors["send " + str(e).split(":", 1)[-1].strip()[:60]] += 1
        finally:
            pool.put_nowait(c)

    try:
        await asyncio.gather(*(send(k, d) for k, d in enumerate(targets)))
    finally:
        while not pool.empty():
            pool.get_nowait().close()
    deadline = time.perf_counter() + late_s
    while time.perf_counter() < deadline and any(i not in arrived for i in sent):
        await asyncio.sleep(0.05)
    for message_id, started in sent.items():
        if message_id in arrived:
            result.latencies_ms.append((arrived[message_id] - started) * 1000)
            after = (arrived[message_id] - answered[message_id]) * 1000
            result.after_answer_ms.append(max(0.0, after))
        else:
            result.missing += 1
    result.missing += len(targets) - len(sent)


def measure(
    fleet: Fleet,
    devices: Sequence[Device],
    samples: int = SAMPLES,
    pace: float = PACE_PER_S,
    settle_s: float | None = None,
) -> WaitRun:
    """A run that takes longer than RUN_TIMEOUT_S in all is cut there and counts as
    failed (every sample unanswered): one stalled request must not hold the whole bench
    (a waiting step once sat for more than 10 minutes)."""
    harness.open_sessions(devices)
    settle = settle_s if settle_s is not None else 3.0
    try:
        return asyncio.run(
            asyncio.wait_for(_measure(fleet, devices, samples, pace, settle), RUN_TIMEOUT_S)
        )
    except TimeoutError:
        result = WaitRun(len(devices), missing=min(samples, len(devices)))
        result.errors[f"the run timed out after {RUN_TIMEOUT_S:g} s"] += 1
        return result


def raw_wakeups(samples: int = SAMPLES, pace: float = PACE_PER_S) -> WaitRun:
    queue = f"bench.wakeup.{uuid.uuid4().hex[:8]}"
    result = WaitRun(1)
    received: dict[str, float] = {}
    ready = threading.Event()

    def consume() -> None:
        ch = harness.rabbit_channel()
        ch.basic_qos(prefetch_count=100)

        def on_message(c, method, props, _body) -> None:
            received[props.message_id] = time.perf_counter()
            c.basic_ack(method.delivery_tag)
            if len(received) >= samples:
                c.stop_consuming()

        ch.basic_consume(queue, on_message)
        ready.set()
        ch.start_consuming()
        harness.close_channel(ch)

    pub = harness.rabbit_channel(confirm=True)
    pub.queue_declare(queue, durable=True)
    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    ready.wait(10)
    time.sleep(0.2)
    sent: dict[str, float] = {}
    t0 = time.perf_counter() + 0.1
    for k in range(samples):
        time.sleep(max(0.0, t0 + k / pace - time.perf_counter()))
        body, props = harness.pushbox_message("notification")
        started = time.perf_counter()
        pub.basic_publish("", queue, body, props)
        sent[props.message_id] = started
    consumer.join(10)
    for i, started in sent.items():
        if i in received:
            result.latencies_ms.append((received[i] - started) * 1000)
        else:
            result.missing += 1
    pub.queue_delete(queue)
    harness.close_channel(pub)
    return result


def run(fleet: Fleet | None = None) -> list[Figure]:
    with harness.fleet_of("wakeup", WAITING, fleet) as f:
        devices = f.devices[:WAITING]
        print(f"wake-up: {len(devices)} waiting, {SAMPLES} sends at {PACE_PER_S}/s ...")
        ours = measure(f, devices)
        print(f"  pushbox {ours.summary()}", flush=True)
    raw = raw_wakeups()
    print(f"  raw pika {raw.summary()}", flush=True)
    return [figure("wakeup_p99_ms", ours, raw, 100, "at 1,000 waiting", "wakeup", "pushbox")]


def figure(
    name: str, ours: WaitRun, raw: WaitRun, limit_ms: float, at: str, module: str, key: str
) -> Figure:
    """A p99 from send to arrival beside raw pika's publish to a live consumer; met
    under `limit_ms` with no error. `key`: what `ours` is called in the detail."""
    value = ours.p(99)
    return Figure(
        name,
        value,
        "ms",
        raw.p(99),
        "raw pika: confirmed persistent publish to a queue with a live consumer, p99",
        False,
        command=harness.command(module),
        target=f"< {limit_ms:g} ms {at}",
        met=value < limit_ms and not ours.errors,
        detail={key: ours.summary(), "raw_pika": raw.summary(), "pace_per_s": PACE_PER_S},
    )


if __name__ == "__main__":
    harness.check_stack()
    harness.finish(run())
