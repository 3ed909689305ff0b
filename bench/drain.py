"""Drain rate: one device with a backlog of 10,000 messages syncs and acks it all
through nginx (`max` 500, the SDK's Phone.drain), msgs/s.

Baselines, same run: raw pika basic_consume on the same queue (prefetch 500, ack with
`multiple` every 250); Mosquitto as the peer, a persistent session (QoS 1, clean
session off) draining 10,000 queued messages on reconnect. ROUNDS of each, interleaved;
medians reported. Messages are about 500 bytes everywhere.

A device's lane holds at most PUSH_DEVICE_BACKLOG_MAX messages (1,000 by default), so
a 10,000-message backlog needs the cap raised. When the stack declared the device's
lanes with a smaller cap, the bench declares them again with a cap of 10,000 through
Pushbox's own topology code (what registering under PUSH_DEVICE_BACKLOG_MAX=10000
would have made)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from pika.exceptions import ChannelClosedByBroker

from bench import harness
from bench.harness import Figure
from device_registry.topology import Route, Topology
from pushbox_core.names import LANES
from pushbox_core.rabbit import Rabbit
from sdk_stub import Phone

BACKLOG = 10_000
MAX = 500
PREFETCH = 500
ACK_EVERY = 250
ROUNDS = 3


def ensure_backlog_cap(device_id: str, app_id: str) -> bool:
    """Make sure the device's lanes take BACKLOG messages; True when re-declared."""
    s = harness.settings()
    nm = harness.names(s)
    big = dataclasses.replace(s, device_backlog_max=max(BACKLOG, s.device_backlog_max))
    topology = Topology(Rabbit(s.broker_urls, name="bench"), nm, big)
    args = topology.queue_arguments()
    ch = harness.rabbit_channel(s)
    try:
        for lane in LANES:
            ch.queue_declare(nm.device_queue(device_id, lane), durable=True, arguments=args)
        return False
    except ChannelClosedByBroker as e:
        if e.reply_code != 406:
            raise
    finally:
        harness.close_channel(ch)
    harness.delete_queues(nm.device_queues(device_id), threads=1)
    topology.ensure_device(Route(device_id, app_id, None, ()))
    return True


def fill(queue_key: str, n: int = BACKLOG) -> None:
    nm = harness.names()
    batch = [(queue_key, *harness.pushbox_message("broadcast")) for _ in range(n)]
    harness.publish_many(nm.direct_exchange("normal"), batch)


def pushbox_drain(phone: Phone) -> float:
    """Messages/s."""
    started = time.perf_counter()
    got = phone.drain(max=MAX)
    seconds = time.perf_counter() - started
    if len({m["id"] for m in got}) != BACKLOG:
        raise RuntimeError(f"drained {len(got)} messages, expected {BACKLOG}")
    return BACKLOG / seconds


def raw_drain(queue: str) -> float:
    ch = harness.rabbit_channel()
    ch.basic_qos(prefetch_count=PREFETCH)
    got = 0
    started = time.perf_counter()

    def on_message(c, method, _props, _body) -> None:
        nonlocal got
        got += 1
        if got % ACK_EVERY == 0 or got == BACKLOG:
            c.basic_ack(method.delivery_tag, multiple=True)
        if got == BACKLOG:
            c.stop_consuming()

    ch.basic_consume(queue, on_message)
    ch.start_consuming()
    seconds = time.perf_counter() - started
    harness.close_channel(ch)
    return BACKLOG / seconds


# ---- Mosquitto, our own, on a free port
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mosquitto():
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench-mosquitto-"))
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "max_queued_messages 0\n"  # the default (1000) drops the rest silently
        "max_queued_bytes 0\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
    )
    with open(workdir / "mosquitto.log", "wb") as log:
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s, contextlib.suppress(OSError):
                s.connect(("127.0.0.1", port))
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"mosquitto did not start: see {workdir}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def mqtt_client(client_id: str, clean: bool) -> mqtt.Client:
    return mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        protocol=mqtt.MQTTv311,
    )


def mosquitto_drain(port: int, n: int = BACKLOG) -> float:
    topic = f"bench/drain/{os.getpid()}"
    client_id = f"bench-drain-{time.monotonic_ns()}"
    subscribed = threading.Event()
    sub = mqtt_client(client_id, clean=False)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    sub.subscribe(topic, qos=1)
    if not subscribed.wait(10):
        raise RuntimeError("mosquitto: no SUBACK")
    sub.disconnect()
    sub.loop_stop()

    pub = mqtt_client(client_id + "-pub", clean=True)
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    body, _props = harness.pushbox_message("broadcast")
    infos = [pub.publish(topic, body, qos=1) for _ in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    pub.disconnect()
    pub.loop_stop()

    got = 0
    done = threading.Event()

    def on_message(_c, _u, _msg) -> None:
        nonlocal got
        got += 1
        if got >= n:
            done.set()

    back = mqtt_client(client_id, clean=False)
    back.on_message = on_message
    started = time.perf_counter()
    back.connect("127.0.0.1", port)
    back.loop_start()
    finished = done.wait(60)
    seconds = time.perf_counter() - started
    back.disconnect()
    back.loop_stop()
    if not finished:
        raise RuntimeError(f"mosquitto delivered {got} of {n} queued messages")
    return n / seconds


@dataclasses.dataclass
class Rounds:
    """ROUNDS of a drain under test and its two baselines, interleaved: rates, the CPU
    each part spent per message in each round of the one under test, and the load."""

    ours: list[float] = dataclasses.field(default_factory=list)
    raw: list[float] = dataclasses.field(default_factory=list)
    mosquitto: list[float] = dataclasses.field(default_factory=list)
    cpu: list[dict[str, float]] = dataclasses.field(default_factory=list)
    load: list[list[float]] = dataclasses.field(default_factory=list)

    def detail(self, ours_name: str) -> dict:
        median_round = sorted(range(len(self.ours)), key=self.ours.__getitem__)[len(self.ours) // 2]
        return {
            ours_name: [round(x) for x in self.ours],
            "raw_pika": [round(x) for x in self.raw],
            "mosquitto": [round(x) for x in self.mosquitto],
            "load_at_rounds": self.load,  # 1, 5, 15 min: others' work shares the cores
            "cpu_us_per_message": self.cpu[median_round],
        }


def interleaved(label: str, key: str, queue: str, ours: Callable[[], float]) -> Rounds:
    """Each round: fill the device's lane and drain it with `ours` (CPU measured), fill
    it again for raw pika on the same queue, then a Mosquitto drain."""
    r = Rounds()
    with mosquitto() as port:
        for _ in range(ROUNDS):
            r.load.append([round(x, 2) for x in os.getloadavg()])
            fill(key)
            with harness.CpuMeter() as meter:
                r.ours.append(ours())
            r.cpu.append(meter.per(BACKLOG))
            fill(key)
            r.raw.append(raw_drain(queue))
            r.mosquitto.append(mosquitto_drain(port))
            print(
                f"  {label} {r.ours[-1]:.0f}/s, raw pika {r.raw[-1]:.0f}/s,"
                f" mosquitto {r.mosquitto[-1]:.0f}/s (load {r.load[-1][0]})",
                flush=True,
            )
    return r


def figures(
    names: tuple[str, str], r: Rounds, detail: dict, module: str, raw_share: float
) -> list[Figure]:
    """The pair of figures of a drain: beside raw pika (target `raw_share` of it) and
    beside Mosquitto (target: above it), medians of the rounds."""
    value = harness.median(r.ours)
    raw, mq = harness.median(r.raw), harness.median(r.mosquitto)
    cmd = harness.command(module)
    return [
        Figure(
            names[0],
            value,
            "msgs/s",
            raw,
            "raw pika basic_consume, prefetch 500, ack multiple every 250, same queue",
            True,
            command=cmd,
            target=f">= {raw_share:g}x raw",
            met=value >= raw_share * raw,
            detail=detail,
        ),
        Figure(
            names[1],
            value,
            "msgs/s",
            mq,
            "Mosquitto 2.0 persistent session, QoS 1, clean session off, 10,000 queued",
            True,
            command=cmd,
            target="> 1x mosquitto",
            met=value > mq,
            detail=detail,
        ),
    ]


def backlog_phone(fleet: harness.Fleet) -> tuple[Phone, str, bool]:
    """A phone with a session in the fleet's app whose lanes take BACKLOG messages:
    (the phone, its device id, whether its lanes were declared again for that)."""
    phone = Phone(harness.base_url(), fleet.app["app_key"])
    phone.open_session()
    assert phone.device_id is not None and phone.state.device_secret is not None
    fleet.devices.append(harness.Device(phone.device_id, phone.state.device_secret))
    return phone, phone.device_id, ensure_backlog_cap(phone.device_id, fleet.app_id)


def run() -> list[Figure]:
    nm = harness.names()
    with harness.fleet_of("drain", 0) as fleet:
        phone, device_id, redeclared = backlog_phone(fleet)
        queue = nm.device_queue(device_id, "normal")
        print(f"drain: {BACKLOG} messages, {ROUNDS} rounds ...", flush=True)
        r = interleaved("pushbox", nm.device_key(device_id), queue, lambda: pushbox_drain(phone))
    detail = {
        "backlog": BACKLOG,
        "max": MAX,
        **r.detail("pushbox"),
        "lanes_redeclared_with_cap_10000": redeclared,
    }
    return figures(("drain_rate", "drain_rate_vs_mosquitto"), r, detail, "drain", 0.5)


if __name__ == "__main__":
    harness.check_stack()
    harness.finish(run())
