"""Campaign landing time: a campaign to 10,000 offline devices selected by a filter
(`platforms: [android]`, which every device of the fleet's app matches), from the
request until every target device's queue holds the message.

The campaign answers 202 at once and the campaign worker fans it out (chunks of
1,000, every message confirmed by the broker before its chunk is counted), so the
campaign reads `done` only once every target queue holds its message: the bench
polls `GET /v1/campaigns/<id>` every 50 ms and takes the first answer that says
`done` (an upper bound by one poll), then checks with passive declares, not timed,
that every device's normal lane grew by one.

Baseline, same run: raw pika publishing the same 10,000 messages, one to each device's
normal lane through the same direct exchange, persistent and mandatory, 1,000 confirms
in flight on one channel. Every normal lane first gets one raw message, not measured
(a classic queue's first message costs the broker far more than the next ones); each
run waits until the broker is quiet. Pushbox and raw alternate, ROUNDS each; medians.

The detail says what a campaign costs per device: CPU microseconds of the campaign
worker (its work horses included), the broker, MySQL, Redis and the API."""

from __future__ import annotations

import os
import time
from pathlib import Path

import requests

from bench import harness
from bench.harness import Figure, Fleet
from scripts.stack import Supervisor

ROUNDS = 2
POLL_S = 0.05
LANDING_LIMIT_S = 600
REQUEST_TIMEOUT_S = 30


class NotLanded(Exception):
    pass


def _worker_cpu_s() -> float:
    """CPU seconds of the campaign worker of the stack in .run/, with its reaped work
    horses (utime, stime, cutime, cstime)."""
    pid = Supervisor(harness.ROOT / ".run").pids().get("campaigns")
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _landed_once(fleet: Fleet, http: requests.Session, n: int) -> tuple[float, float]:
    """(seconds until the campaign to the fleet's n devices read done, seconds until
    its 202)."""
    auth = {"Authorization": f"Bearer {fleet.app['server_key']}"}
    base = harness.base_url()
    body = {
        "audience": {"platforms": ["android"]},
        "title": "flash sale",
        "body": harness.PAYLOAD_TEXT,
        # no platform wake: the figure is the fan-out into queues, whether or not the
        # fleet has push tokens by now (send gave them; wake_rate measures wakes)
        "wake": "none",
    }
    started = time.perf_counter()
    r = http.post(base + "/v1/campaigns", json=body, headers=auth, timeout=REQUEST_TIMEOUT_S)
    answered = time.perf_counter() - started
    if r.status_code != 202:
        raise NotLanded(f"campaign answered {r.status_code}: {r.text}")
    campaign_id = r.json()["id"]
    while True:
        c = http.get(
            f"{base}/v1/campaigns/{campaign_id}", headers=auth, timeout=REQUEST_TIMEOUT_S
        ).json()
        if c["status"] in ("done", "cancelled", "failed"):
            landed = time.perf_counter() - started
            break
        if time.perf_counter() - started > LANDING_LIMIT_S:
            raise NotLanded(f"not done after {LANDING_LIMIT_S} s: {c}")
        time.sleep(POLL_S)
    if c["status"] != "done" or c["published"] != n or c["targets"] != n:
        raise NotLanded(f"campaign ended {c}")
    return landed, answered


def _check_landed(before: dict[str, int], after: dict[str, int]) -> None:
    short = [q for q, depth in before.items() if after.get(q, 0) < depth + 1]
    if short:
        raise NotLanded(f"{len(short)} queues do not hold the campaign's message")


def _raw_once(ids: list[str]) -> float:
    nm = harness.names()
    body, props = harness.pushbox_message("broadcast")
    batch = [(nm.device_key(i), body, props) for i in ids]
    return harness.publish_many(nm.direct_exchange("normal"), batch, window=1_000)


def run(fleet: Fleet | None = None) -> list[Figure]:
    nm = harness.names()
    with harness.fleet_of("campaign", harness.FLEET_SIZE, fleet) as f:
        ids = [d.id for d in f.devices]
        queues = [nm.device_queue(i, "normal") for i in ids]
        print(f"campaign: {len(ids)} offline devices, {ROUNDS} rounds ...", flush=True)
        print("  warming the normal lanes up (one raw message each, not measured) ...")
        _raw_once(ids)
        http = requests.Session()
        ours: list[tuple[float, float]] = []
        raws: list[float] = []
        settled: list[float] = []
        cpu: dict[str, float] = {}
        failure = None
        try:
            for _ in range(ROUNDS):
                before = harness.ready_counts(queues)  # not measured, nor counted
                settled.append(harness.settle_broker())
                worker_before = _worker_cpu_s()
                with harness.CpuMeter() as meter:
                    ours.append(_landed_once(f, http, len(queues)))
                for part, s in meter.seconds.items():
                    cpu[part] = cpu.get(part, 0.0) + s
                cpu["campaign worker"] = cpu.get("campaign worker", 0.0) + (
                    _worker_cpu_s() - worker_before
                )
                _check_landed(before, harness.ready_counts(queues))
                settled.append(harness.settle_broker())
                raws.append(_raw_once(ids))
                print(f"  pushbox {ours[-1][0]:.2f} s, raw {raws[-1]:.2f} s", flush=True)
        except NotLanded as e:
            failure = f"after {len(ours)} rounds: {e}"
            print(f"  NOT LANDED: {failure}", flush=True)
        finally:
            http.close()
    detail: dict = {
        "devices": len(ids),
        "pushbox_s": [round(x[0], 3) for x in ours],
        "pushbox_answer_s": [round(x[1], 4) for x in ours],
        "raw_s": [round(x, 3) for x in raws],
        "broker_settle_s": [round(s, 1) for s in settled],
        "broker_open_files": harness.broker_open_files(),
        "chunk_devices": harness.settings().campaign_chunk_size,
    }
    if ours:
        n = len(ours) * len(ids)
        detail["cpu_us_per_device"] = {part: round(s / n * 1e6, 1) for part, s in cpu.items()}
    if failure is not None or not ours:
        detail["failure"] = failure
        value = None
    else:
        value = round(harness.median(x[0] for x in ours), 3)
    baseline = round(harness.median(raws), 3) if raws else None
    return [
        Figure(
            "campaign_landing_s",
            value,
            "s",
            baseline,
            "raw pika: the same 10,000 messages, one per device queue, 1,000 confirms in flight",
            False,
            command=harness.command("campaign"),
            target="<= 2x raw",
            met=value is not None and baseline is not None and value <= 2 * baseline,
            detail=detail,
        )
    ]


if __name__ == "__main__":
    harness.check_stack()
    harness.finish(run())
