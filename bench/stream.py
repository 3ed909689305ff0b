"""The live stream (`GET /v1/device/stream`, DESIGN "Live stream"): three figures, each
printed beside baselines of the same run and written to results/latest.json as soon as
it is measured.

- `stream_drain_rate`, `stream_drain_rate_vs_mosquitto`: one device with a backlog of
  10,000 messages opens a stream through nginx (`window` 500) and takes them all,
  acking 250 ids a frame as it goes, msgs/s from the upgrade request to the last
  message. Baselines as `bench.drain`'s, interleaved with it: raw pika basic_consume on
  the same queue (prefetch 500, ack `multiple` every 250) and Mosquitto's persistent
  session (QoS 1) draining 10,000 queued messages on reconnect. ROUNDS of each, medians.
- `stream_wakeup_p99_ms`: 1,000 open streams; 1,000 notifications at 100/s, one each
  to distinct streaming devices; from the start of the send request to the frame's
  arrival. Baseline: raw pika publish to a live consumer at the same pace
  (`bench.wakeup.raw_wakeups`).
- `streaming_devices`: the most open streams the two API instances hold while p99
  from send to frame stays under 1 s (STEP_SAMPLES sends at 100/s to random open
  streams), in STEPS; a step with an error, a lost message, a stream the server closed,
  or that runs past STEP_TIMEOUT_S fails, and the figure is the last step that held.
  Its detail also carries what an idle open stream costs (API memory, the broker's
  channel and consumers and their memory, file descriptors, idle CPU), measured at
  each step before its sends, outside its timeouts; docs/capacity.md reads it.

The drain's client is `bench.client.LeanStream` (the client shares the cores with the
server it measures; bench/README.md says why); the many streams are the `websockets`
library's on one asyncio loop (a task a stream, no thread). No client here asks for
compression. Every connect, receive, send request and step has a timeout. The bench
raises its own soft open-files limit to the hard one: 10,000 streams are 10,000
sockets here too.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import os
import random
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench import drain, harness, wakeup
from bench.client import LeanStream, bearer
from bench.harness import Device, Figure, Fleet
from scripts.stack import raise_open_files

# the drain
BACKLOG = drain.BACKLOG
WINDOW = 500
ACK_EVERY = 250
ROUNDS = 3
DRAIN_TIMEOUT_S = 120.0
# the wake-up
WAKE_STREAMS = 1_000
SAMPLES = 1_000
PACE_PER_S = 100
# streaming devices
STEPS = (1_000, 2_000, 4_000, 6_000, 8_000, 10_000)
STEP_SAMPLES = 500
P99_LIMIT_MS = 1_000.0
STEP_TIMEOUT_S = 240.0  # for opening a step's new streams; again for its sends and late frames
# every stream and request
OPEN_PER_S = 400  # streams opened a second (not a thundering herd)
OPENING_AT_ONCE = 64
OPEN_TIMEOUT_S = 20.0
RECV_TIMEOUT_S = 30.0
LATE_S = 5.0  # a frame not there this long after the last send is lost
SETTLE_S = 2.0


def stream_url(window: int) -> str:
    return "ws" + harness.base_url().removeprefix("http") + f"/v1/device/stream?window={window}"


def open_stream(token: str, window: int, max_queue: int = 16) -> connect:
    return connect(
        stream_url(window),
        additional_headers=bearer(token),
        compression=None,
        proxy=None,
        open_timeout=OPEN_TIMEOUT_S,
        ping_interval=None,  # the server pings (every 25 s); the library answers
        close_timeout=2,
        max_size=None,
        max_queue=max_queue,
    )


def record(figure: Figure) -> Figure:
    """Into latest.json now: a run cut short later still leaves it."""
    harness.write_results([figure])
    return figure


def load() -> list[float]:
    """Load averages (1, 5, 15 min): the machine is shared; a noisy run says so."""
    return [round(x, 2) for x in os.getloadavg()]


# ---- the drain
async def _stream_drain(token: str, n: int) -> float:
    """Messages/s: one stream (the lean client) takes the device's n-message backlog,
    acking ACK_EVERY ids a frame, the last ones at the end."""
    started = time.perf_counter()
    ws = await asyncio.wait_for(
        LeanStream.open(harness.base_url(), f"/v1/device/stream?window={WINDOW}", bearer(token)),
        OPEN_TIMEOUT_S,
    )
    seen: set[str] = set()
    batch: list[str] = []
    try:
        while len(seen) < n:
            for raw in await asyncio.wait_for(ws.frames(), RECV_TIMEOUT_S):
                frame = json.loads(raw)
                if frame.get("op") != "message":
                    raise RuntimeError(f"unexpected frame {frame!r:.200}")
                seen.add(frame["id"])
                batch.append(frame["id"])
            if len(batch) >= ACK_EVERY or len(seen) >= n:
                ws.send_text(json.dumps({"op": "ack", "ids": batch}))
                batch = []
        seconds = time.perf_counter() - started
    finally:
        await ws.close()
    return n / seconds


async def _library_drain(token: str, n: int) -> float:
    """The same with the `websockets` library (a cross-check of the client's share)."""
    started = time.perf_counter()
    seen: set[str] = set()
    batch: list[str] = []
    async with open_stream(token, WINDOW, max_queue=4 * WINDOW) as ws:
        while len(seen) < n:
            frame = json.loads(await asyncio.wait_for(ws.recv(decode=False), RECV_TIMEOUT_S))
            seen.add(frame["id"])
            batch.append(frame["id"])
            if len(batch) >= ACK_EVERY or len(seen) >= n:
                await ws.send(json.dumps({"op": "ack", "ids": batch}))
                batch = []
        seconds = time.perf_counter() - started
    return n / seconds


def stream_drain(token: str, queues: Sequence[str], client=_stream_drain) -> float:
    rate = asyncio.run(asyncio.wait_for(client(token, BACKLOG), DRAIN_TIMEOUT_S))
    # the acks went before the close: once the stream has let go, nothing is left
    deadline = time.monotonic() + 10
    while (left := sum(harness.ready_counts(queues, threads=1).values())) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    if left:
        raise RuntimeError(f"{left} messages left in the device's lanes after the stream drain")
    return rate


def drain_figures() -> list[Figure]:
    nm = harness.names()
    with harness.fleet_of("stream drain", 0) as fleet:
        phone, device_id, redeclared = drain.backlog_phone(fleet)
        token = phone.token
        assert token is not None
        queues = nm.device_queues(device_id)
        print(f"stream drain: {BACKLOG} messages, window {WINDOW}, {ROUNDS} rounds ...")
        r = drain.interleaved(
            "stream",
            nm.device_key(device_id),
            nm.device_queue(device_id, "normal"),
            lambda: stream_drain(token, queues),
        )
        # the same drain with the websockets library, once: what the client's share is
        drain.fill(nm.device_key(device_id))
        library = stream_drain(token, queues, _library_drain)
        print(f"  stream with the websockets library as the client: {library:.0f}/s", flush=True)
    detail = {
        "backlog": BACKLOG,
        "window": WINDOW,
        "ack_every": ACK_EVERY,
        **r.detail("stream"),
        "stream_with_websockets_library_client": round(library),
        "lanes_redeclared_with_cap_10000": redeclared,
    }
    names = ("stream_drain_rate", "stream_drain_rate_vs_mosquitto")
    return [record(f) for f in drain.figures(names, r, detail, "stream", 0.8)]


# ---- many open streams
@dataclass
class Streams:
    """Open streams, one task each reading frames: every message is noted when it
    arrives and acked at once, as a live app does."""

    window: int = 100
    held: dict[str, tuple[ClientConnection, asyncio.Task]] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)  # message id: when
    errors: collections.Counter = field(default_factory=collections.Counter)
    closed_by_server: int = 0

    async def open(self, devices: Sequence[Device]) -> None:
        """Open a stream for each device that has none, OPEN_PER_S a second."""
        gate = asyncio.Semaphore(OPENING_AT_ONCE)
        loop = asyncio.get_running_loop()
        todo = [d for d in devices if d.id not in self.held]
        t0 = loop.time()

        async def one(k: int, d: Device) -> None:
            await asyncio.sleep(max(0.0, t0 + k / OPEN_PER_S - loop.time()))
            async with gate:
                assert d.token is not None
                try:
                    ws = await open_stream(d.token, self.window)
                except (OSError, TimeoutError, WebSocketException) as e:
                    self.errors[f"open: {type(e).__name__} {str(e)[:60]}"] += 1
                    return
            self.held[d.id] = (ws, asyncio.create_task(self._read(ws)))

        await asyncio.gather(*(one(k, d) for k, d in enumerate(todo)))
        # the open streams' objects leave the collector's sight: a full collection of
        # this process walked them all, 0.3-0.7 s at 6,000-10,000 streams, and the
        # sends it timed then were late by as much (the server's own pauses are its
        # own: pushbox_core/gc_freeze.py); close() gives them back
        gc.freeze()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                now = time.perf_counter()
                frame = json.loads(raw)
                if frame.get("op") != "message":
                    self.errors[f"frame {frame.get('op')}"] += 1
                    continue
                self.arrived.setdefault(frame["id"], now)
                await ws.send(json.dumps({"op": "ack", "ids": [frame["id"]]}))
        except ConnectionClosed as e:
            if e.rcvd is not None:  # the server closed it (we abort, without a close frame)
                self.closed_by_server += 1
                self.errors[f"closed by the server: {e.rcvd.code}"] += 1
        except (OSError, ValueError) as e:
            self.errors[f"read: {type(e).__name__}"] += 1

    async def ready(self, devices: Sequence[Device], limit_s: float) -> int:
        """Wait until the API instances stream to every one of these devices (the
        upgrade is answered before the server's consumer is open: its `connected` mark
        in Redis, set once it is, says so); returns how many are."""
        r = redis.Redis.from_url(harness.settings().redis_url, socket_timeout=10)
        nm = harness.names()
        keys = [nm.connected_key(d.id) for d in devices if d.id in self.held]
        deadline = time.monotonic() + limit_s
        while True:
            marked = 0
            for start in range(0, len(keys), 1000):
                found = await asyncio.to_thread(r.mget, keys[start : start + 1000])
                marked += sum(1 for m in found if m is not None)
            if marked >= len(keys) or time.monotonic() > deadline:
                return marked
            await asyncio.sleep(0.5)

    def still_open(self) -> int:
        return sum(1 for _ws, task in self.held.values() if not task.done())

    async def close(self) -> None:
        """Hang up every stream at once (no close handshake: what each was sent is acked)."""
        for ws, task in self.held.values():
            task.cancel()
            ws.transport.abort()
        await asyncio.gather(*(t for _ws, t in self.held.values()), return_exceptions=True)
        self.held.clear()
        gc.unfreeze()


async def _sends(
    fleet: Fleet, streams: Streams, targets: Sequence[Device], pace: float
) -> wakeup.WaitRun:
    """One notification to each target at `pace`; latency from its send request to its
    frame; a frame not there LATE_S after the last send counts as lost."""
    result = wakeup.WaitRun(len(streams.held))
    await wakeup.paced_sends(
        fleet, targets, pace, result, streams.arrived, title="live", late_s=LATE_S
    )
    result.errors.update(streams.errors)
    return result


def _open_ones(fleet: Fleet, n: int) -> list[Device]:
    devices = fleet.devices[:n]
    harness.open_sessions(devices)
    return devices


async def _wakeup(fleet: Fleet, devices: Sequence[Device]) -> wakeup.WaitRun:
    streams = Streams()
    try:
        await asyncio.wait_for(streams.open(devices), STEP_TIMEOUT_S)
        await streams.ready(devices, STEP_TIMEOUT_S)
        await asyncio.sleep(SETTLE_S)
        targets = random.Random(11).sample(list(devices), min(SAMPLES, len(devices)))
        return await asyncio.wait_for(_sends(fleet, streams, targets, PACE_PER_S), STEP_TIMEOUT_S)
    finally:
        await streams.close()


def wakeup_figure(fleet: Fleet | None = None) -> Figure:
    with harness.fleet_of("stream wakeup", WAKE_STREAMS, fleet) as f:
        devices = _open_ones(f, WAKE_STREAMS)
        print(f"stream wake-up: {len(devices)} open streams, {SAMPLES} sends at {PACE_PER_S}/s")
        before = load()
        ours = asyncio.run(_wakeup(f, devices))
        print(f"  stream {ours.summary()} (load {before[0]})", flush=True)
        wait_released(f.devices[:WAKE_STREAMS])
    raw = wakeup.raw_wakeups(SAMPLES, PACE_PER_S)
    print(f"  raw pika {raw.summary()}", flush=True)
    fig = wakeup.figure(
        "stream_wakeup_p99_ms", ours, raw, 50, "at 1,000 open streams", "stream", "stream"
    )
    fig.detail["load"] = before
    return record(fig)


# ---- what an idle stream costs
def _rss(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _node() -> harness.BrokerNode:
    """The node the stack is connected to (the first of a cluster's: list_connections
    and list_consumers answer for the whole cluster; the channels' memory counted by
    `eval` is the memory of those on this node). Not `rabbitmqctl` of the machine's
    broker: a stack on a node of its own (`make cluster-up NODES=1`) read as zero."""
    nodes = harness.broker_nodes()
    if not nodes:
        raise RuntimeError("no local RabbitMQ node listens on the stack's broker URL")
    return nodes[0]


def _rabbitmqctl(*args: str) -> list[list[str]]:
    out = _node().run("-q", *args, timeout=120)
    return [line.split("\t") for line in out.splitlines()[1:] if line.strip()]


QUEUE_SAMPLE = 200  # devices whose lanes' queue processes are weighed at every step

# Erlang, run by `rabbitmqctl eval` (@CONNS@ and @QUEUES@ filled in): after a garbage
# collection of each, the memory of the channels on these connections (each channel's
# supervisor, channel, writer and limiter processes) and of these queues' processes
_BROKER_SIDE = """
Mem = fun(P) -> try erlang:garbage_collect(P), element(2, erlang:process_info(P, memory))
  catch _:_ -> 0 end end,
Kind = fun(X) -> try element(1, proc_lib:translate_initial_call(X)) catch _:_ -> none end end,
Conns = [list_to_pid(S) || S <- [@CONNS@]],
Mine = [P || P <- rabbit_channel:list_local(), lists:member(catch proplists:get_value(
  connection, rabbit_channel:info(P, [connection])), Conns)],
Chan = fun(P) -> try {links, Ls} = erlang:process_info(P, links),
  [Sup | _] = [X || X <- Ls, is_pid(X), Kind(X) == supervisor2],
  {links, SL} = erlang:process_info(Sup, links),
  Mem(Sup) + lists:sum([Mem(X) || X <- SL, is_pid(X),
    lists:member(Kind(X), [rabbit_channel, rabbit_writer, rabbit_limiter])])
  catch _:_ -> 0 end end,
QMem = fun(N) -> case rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, N)) of
  {ok, Q} -> Mem(amqqueue:get_pid(Q)); _ -> 0 end end,
io:format("~b ~b ~b~n", [length(Mine), lists:sum([Chan(P) || P <- Mine]),
  lists:sum([QMem(N) || N <- [@QUEUES@]])]).
"""


def _local_pid(pid: str) -> str:
    """`<rabbit@host.1796015912.12857.8>` (as rabbitmqctl prints it) -> `<0.12857.8>`."""
    parts = pid.strip("<>").split(".")
    return f"<0.{parts[-2]}.{parts[-1]}>"


def _broker_side(api: Sequence[int], fleet: Fleet) -> tuple[int, int, int, int]:
    """On the (shared) broker, only what is ours: (channels on these API workers'
    connections, their memory, consumers of the fleet's lanes, the memory of the queue
    processes of the first QUEUE_SAMPLE devices' lanes)."""
    broker_ports = " or ".join(f"dport = :{n.port}" for n in harness.broker_nodes())
    out = subprocess.run(["ss", "-Htnp", broker_ports], capture_output=True, text=True).stdout
    ports = {
        line.split()[3].rsplit(":", 1)[1]
        for line in out.splitlines()
        if any(f"pid={p}," in line for p in api)
    }
    conns = [
        _local_pid(row[0])
        for row in _rabbitmqctl("list_connections", "pid", "peer_port")
        if row[1:2] and row[1] in ports
    ]
    nm = harness.names()
    sample = [q for d in fleet.devices[:QUEUE_SAMPLE] for q in nm.device_queues(d.id)]
    code = _BROKER_SIDE.replace("@CONNS@", ",".join(f'"{c}"' for c in conns)).replace(
        "@QUEUES@", ",".join(f'<<"{q}">>' for q in sample)
    )
    got = _node().run("-q", "eval", code, timeout=300).split()
    channels, channel_bytes, queue_bytes = (int(x) for x in got[:3])
    ids = {d.id for d in fleet.devices}
    consumers = sum(
        1
        for row in _rabbitmqctl("list_consumers", "queue_name")
        if nm.device_id_of_queue(row[0]) in ids
    )
    return channels, channel_bytes, consumers, queue_bytes


@dataclass(frozen=True)
class Cost:
    streams: int
    api_rss: int
    api_fds: int
    nginx_fds: int
    bench_fds: int
    broker_channels: int  # on the API workers' connections
    broker_channel_bytes: int  # their processes' memory
    broker_consumers: int  # on the fleet's lanes
    broker_sample_queue_bytes: int  # the queue processes of the first QUEUE_SAMPLE devices
    api_cpu_s_per_s: float  # the API workers' CPU while the streams sit idle


def cost_now(streams: int, fleet: Fleet, idle_s: float = 5.0) -> Cost:
    parts = harness.stack_processes()
    with harness.CpuMeter() as meter:
        time.sleep(idle_s)
    try:
        channels, channel_bytes, consumers, queue_bytes = _broker_side(parts["api"], fleet)
    except (OSError, subprocess.SubprocessError, ValueError) as e:  # a slow broker: no figure
        print(f"  (the broker's side of the idle cost was not measured: {e!r:.100})")
        channels, channel_bytes, consumers, queue_bytes = -1, -1, -1, -1
    return Cost(
        streams=streams,
        api_rss=sum(_rss(p) for p in parts["api"]),
        api_fds=sum(_fds(p) for p in parts["api"]),
        nginx_fds=sum(_fds(p) for p in parts["nginx"]),
        bench_fds=_fds(os.getpid()),
        broker_channels=channels,
        broker_channel_bytes=channel_bytes,
        broker_consumers=consumers,
        broker_sample_queue_bytes=queue_bytes,
        api_cpu_s_per_s=round(meter.seconds.get("api", 0.0) / idle_s, 4),
    )


def per_stream(a: Cost, b: Cost) -> dict[str, float | None]:
    """What one more open stream cost, from snapshot a to b."""
    n = b.streams - a.streams
    if n <= 0:
        return {}

    def d(name: str, per: int = n) -> float | None:
        before, after = getattr(a, name), getattr(b, name)
        if before < 0 or after < 0:  # not measured
            return None
        return round((after - before) / per, 3)

    channel, queues = d("broker_channel_bytes"), d("broker_sample_queue_bytes", QUEUE_SAMPLE)
    return {
        "streams": n,
        "api_bytes": d("api_rss"),
        "api_fds": d("api_fds"),
        "nginx_fds": d("nginx_fds"),
        "bench_fds": d("bench_fds"),
        "broker_channels": d("broker_channels"),
        "broker_consumers": d("broker_consumers"),
        "broker_channel_bytes": channel,
        "broker_queue_bytes_with_its_consumers": queues,  # its two lanes, consumed vs not
        "broker_bytes": None if channel is None or queues is None else round(channel + queues),
        "api_cpu_us_per_s": round((b.api_cpu_s_per_s - a.api_cpu_s_per_s) / n * 1e6, 2),
    }


# ---- the most open streams
async def _steps(fleet: Fleet, costs: list[Cost]) -> tuple[int, list[dict], dict | None]:
    streams = Streams()
    steps: list[dict] = []
    best = 0
    failed: dict | None = None
    rng = random.Random(12)
    loop = asyncio.get_running_loop()
    try:
        for n in STEPS:
            if n > len(fleet.devices):
                break
            started = loop.time()
            summary: dict
            measuring = 0.0
            try:
                async with asyncio.timeout(STEP_TIMEOUT_S):  # opening the step's streams
                    await streams.open(fleet.devices[:n])
                    if await streams.ready(fleet.devices[:n], STEP_TIMEOUT_S) < n:
                        raise TimeoutError
                await asyncio.sleep(SETTLE_S)
                # what they cost idle (rabbitmqctl has timeouts of its own; not the step's)
                measuring = loop.time()
                costs.append(await asyncio.to_thread(cost_now, n, fleet))
                measuring = loop.time() - measuring
                targets = [rng.choice(fleet.devices[:n]) for _ in range(STEP_SAMPLES)]
                async with asyncio.timeout(STEP_TIMEOUT_S):
                    r = await _sends(fleet, streams, targets, PACE_PER_S)
                summary = {**r.summary(), "open": streams.still_open()}
                ok = (
                    r.p(99) < P99_LIMIT_MS
                    and not r.errors
                    and not r.missing
                    and streams.still_open() == n
                )
            except TimeoutError:
                summary = {
                    "waiting": n,
                    "open": streams.still_open(),
                    "timed_out_s": STEP_TIMEOUT_S,
                    "errors": dict(streams.errors),
                }
                ok = False
            summary["measuring_idle_cost_s"] = round(measuring, 1)
            summary["load"] = load()
            summary["seconds"] = round(loop.time() - started, 1)
            steps.append(summary)
            print(f"  {n}: {'ok' if ok else 'FAILED'} {summary}", flush=True)
            if not ok:
                failed = summary
                break
            best = n
    finally:
        await streams.close()
    return best, steps, failed


def wait_released(devices: Sequence[Device], limit_s: float = 60.0) -> float:
    """After the streams hang up: until the API instances have let go of them (their
    sockets closed), so the next figure starts from an idle stack. Seconds waited."""
    started = time.monotonic()
    api = harness.stack_processes()["api"]
    floor = None
    while time.monotonic() - started < limit_s:
        fds = sum(_fds(p) for p in api)
        if floor is not None and fds >= floor - 5:  # no longer falling
            break
        floor = fds
        time.sleep(1.0)
    return time.monotonic() - started


def streaming_figure(fleet: Fleet | None = None) -> Figure:
    with harness.fleet_of("streaming", max(STEPS), fleet) as f:
        print(f"streaming devices: steps {STEPS}, {STEP_SAMPLES} sends at {PACE_PER_S}/s ...")
        harness.open_sessions(f.devices)
        costs = [cost_now(0, f)]
        best, steps, failed = asyncio.run(_steps(f, costs))
        wait_released(f.devices)
    idle = {str(c.streams): per_stream(costs[0], c) for c in costs[1:]}
    return record(
        Figure(
            "streaming_devices",
            float(best),
            "devices",
            None,
            None,
            True,
            command=harness.command("stream"),
            target=">= 10,000",
            met=best >= 10_000,
            detail={
                "steps": steps,
                "failed_at": failed,
                "p99_limit_ms": P99_LIMIT_MS,
                "pace_per_s": PACE_PER_S,
                "idle_stream_cost_by_step": idle,
                "snapshots": [c.__dict__ for c in costs],
            },
        )
    )


def run(fleet: Fleet | None = None) -> list[Figure]:
    """Every stream figure, each written as soon as it is measured."""
    files = raise_open_files()
    if files < 2 * max(STEPS) + 1_000:
        print(f"  (this process may open only {files} files: the larger steps will fail)")
    return [*drain_figures(), wakeup_figure(fleet), streaming_figure(fleet)]


if __name__ == "__main__":
    import sys

    harness.check_stack()
    which = set(sys.argv[1:]) or {"drain", "wakeup", "streaming"}
    raise_open_files()
    figures: list[Figure] = []
    if "drain" in which:
        figures += drain_figures()
    if "wakeup" in which:
        figures += [wakeup_figure()]
    if "streaming" in which:
        figures += [streaming_figure()]
    harness.print_table(figures)
    print(f"written to {harness.LATEST}")
