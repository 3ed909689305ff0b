"""Batch send rate: messages/s through `POST /v1/notifications/batch`, 500 notifications
a call to random devices among 10,000, 4 senders, each answer meaning the broker
confirmed every message of the call.

Baseline, same run: raw pika persistent, mandatory publishes of as many messages, in
Pushbox's wire format, to the same direct exchange and random devices, 1,000 confirms
in flight on one channel (what `send` measures too). As `send` does, every device's
high lane first gets one raw message, not measured (a classic queue's first message
costs the broker far more than the next ones), and each run waits until the broker is
quiet first. The detail says where the CPU went, microseconds per message of each part."""

from __future__ import annotations

import random

from bench import harness, send
from bench.client import Connection, bearer
from bench.harness import Figure, Fleet

SENDERS = 4
PER_CALL = 500
CALLS = 24  # 12,000 messages
RAW_IN_FLIGHT = 1_000


def batch_rate(fleet: Fleet, calls: int = CALLS) -> float:
    ids = [d.id for d in fleet.devices]
    rng = random.Random(11)
    auth = bearer(fleet.app["server_key"])
    bodies = [
        {
            "notifications": [
                {
                    "to": {"device_id": rng.choice(ids)},
                    "title": f"order {k}-{i}",
                    "body": harness.PAYLOAD_TEXT,
                    "wake": "none",  # as the campaign's: publishing alone is measured
                }
                for i in range(PER_CALL)
            ]
        }
        for k in range(calls)
    ]

    def call(c: Connection, k: int):
        return c.request("POST", "/v1/notifications/batch", bodies[k], auth, timeout=120)

    seconds, statuses = send.hammer(calls, SENDERS, call)
    if set(statuses) != {200}:
        raise RuntimeError(f"batches answered {dict(statuses)}")
    return calls * PER_CALL / seconds


def run(fleet: Fleet | None = None) -> list[Figure]:
    n = CALLS * PER_CALL
    with harness.fleet_of("batch", harness.FLEET_SIZE, fleet) as f:
        ids = [d.id for d in f.devices]
        print(f"batch: {CALLS} calls of {PER_CALL}, {SENDERS} senders, {len(ids)} devices ...")
        print("  warming the device queues up (one raw message each, not measured) ...")
        send.warm_up(ids)
        settled = [harness.settle_broker()]
        with harness.CpuMeter() as sending:
            rate = batch_rate(f)
        print(f"  pushbox: {rate:.0f} messages/s; raw publish ...", flush=True)
        settled.append(harness.settle_broker())
        batch = send.raw_batch(ids, n)
        with harness.CpuMeter() as publishing:
            raw = send.raw_publish_rate(batch, window=RAW_IN_FLIGHT)
        print(f"  raw publish: {raw:.0f}/s ({RAW_IN_FLIGHT} in flight)", flush=True)
        settled.append(harness.settle_broker())
    detail = {
        "messages": n,
        "per_call": PER_CALL,
        "senders": SENDERS,
        "devices": harness.FLEET_SIZE,
        "cpu_us_per_message": sending.per(n),
        "cpu_us_per_raw_publish": publishing.per(n),
        "broker_settle_s": [round(s, 1) for s in settled],
        "broker_open_files": harness.broker_open_files(),
    }
    return [
        Figure(
            "batch_send_rate",
            round(rate),
            "msgs/s",
            round(raw),
            f"raw pika: persistent mandatory publishes, {RAW_IN_FLIGHT} confirms in flight",
            True,
            command=harness.command("batch"),
            target=">= 0.5x raw",
            met=rate >= 0.5 * raw,
            detail=detail,
        )
    ]


if __name__ == "__main__":
    harness.check_stack()
    harness.finish(run())
