"""Wake rate: one broadcast to an app with 10,000 disconnected devices that each have an
APNs token, against the APNs stand-in: platform pushes per second from the API's 202
until the stand-in has received all 10,000.

The stand-in (tests/standins, bench/apns_standin.py) runs as a process of its own;
it records when each request arrived, so the time is the last arrival minus the 202
(both on this machine's clock). The broadcast's own publish, before the 202, is not
in the figure (into 10,000 queues it takes seconds, and a broker with too few open
files thrashes on it: see `harness.fanout_refusal`); it is in the detail.

Baseline, same run: a plain httpx async HTTP/2 client posting 10,000 equivalent
requests to the same stand-in (the same path shape, headers, an ES256 provider token
signed once, the same payload), with the same number in flight as the wake worker
allows (IN_FLIGHT_MAX) and the same connection limit as its client. One raw round
first, not measured (connections, the stand-in's first token), and one raw publish to
the app's fanout (the first message into each queue costs the broker most); then raw
and Pushbox alternate, ROUNDS each; the medians are reported.

Where the CPU goes: each round is wrapped in `harness.CpuMeter` with the stand-in's
process counted apart: CPU microseconds per wake of the wake worker, the stand-in,
MySQL, Redis, the broker, and per raw request of this process and the stand-in; the
busy share of a core of each part says which side is the limit."""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
import uuid
from typing import Any

import httpx
import jwt
import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bench import harness
from bench.apns_standin import ApnsStandin, StepFailed, running
from bench.harness import Figure, Fleet
from dispatcher.platforms.transport import (
    CONNECT_TIMEOUT_S,
    MAX_CONNECTIONS,
    READ_TIMEOUT_S,
    ssl_context,
)
from dispatcher.platforms.wake_worker import IN_FLIGHT_MAX

ROUNDS = 3
TITLE = "flash sale"
BROADCAST_LIMIT_S = 600  # the publish into 10,000 queues, before the 202
WAKE_LIMIT_S = 300  # from the 202 until every push arrived
RAW_LIMIT_S = 300
STATS_LIMIT_S = 60  # until GET /v1/notifications/<id> counts every wake


def busy(meter: harness.CpuMeter, seconds: float) -> dict[str, float]:
    """The share of one core each part kept busy over `seconds`."""
    return {part: round(cpu / seconds, 2) for part, cpu in meter.seconds.items()}


# ---- raw: plain httpx against the stand-in
def raw_requests(standin: ApnsStandin, tokens: list[str]) -> list[tuple[str, bytes, dict]]:
    """(url, body, headers) of one alert push to each token, as the worker would send
    it: the same headers, a provider token signed once with the stand-in's key."""
    creds = standin.credentials()
    key = load_pem_private_key(creds["private_key"].encode(), password=None)
    now = int(time.time())
    bearer = jwt.encode(
        {"iss": creds["team_id"], "iat": now},
        key,  # type: ignore[arg-type]
        algorithm="ES256",
        headers={"kid": creds["key_id"]},
    )
    message_id = uuid.uuid4().hex
    body = json.dumps(
        {
            "aps": {"alert": {"title": TITLE, "body": harness.PAYLOAD_TEXT}},
            "pushbox": {"id": message_id, "kind": "broadcast"},
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    headers = {
        "apns-topic": creds["bundle_id"],
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": str(now + 3 * 86_400),
        "apns-id": str(uuid.UUID(message_id)),
        "authorization": f"bearer {bearer}",
    }
    return [(f"{standin.url}/3/device/{t}", body, headers) for t in tokens]


async def _raw(batch: list[tuple[str, bytes, dict]], ca_file: str) -> tuple[float, dict]:
    client = httpx.AsyncClient(
        http2=True,
        verify=ssl_context(ca_file),
        trust_env=False,
        timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, keepalive_expiry=300),
    )
    in_flight = asyncio.Semaphore(IN_FLIGHT_MAX)
    statuses: collections.Counter[str] = collections.Counter()

    async def one(url: str, body: bytes, headers: dict) -> None:
        async with in_flight:
            try:
                r = await client.post(url, content=body, headers=headers)
                statuses[str(r.status_code)] += 1
            except httpx.HTTPError as e:
                statuses[type(e).__name__] += 1

    try:
        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(*b) for b in batch)), RAW_LIMIT_S)
        return time.perf_counter() - started, dict(statuses)
    except TimeoutError:
        raise StepFailed(f"raw: {sum(statuses.values())} of {len(batch)} answered") from None
    finally:
        await client.aclose()


def raw_once(standin: ApnsStandin, batch: list[tuple[str, bytes, dict]]) -> dict:
    standin.reset()
    with harness.CpuMeter(standin.cpu_part()) as meter:
        seconds, statuses = asyncio.run(_raw(batch, standin.ca_file))
    if statuses != {"200": len(batch)}:
        raise StepFailed(f"raw: the stand-in answered {statuses}")
    return {
        "rate": len(batch) / seconds,
        "s": round(seconds, 3),
        "cpu_us_per_request": meter.per(len(batch)),
        "busy_cores": busy(meter, seconds),
        "load": harness.load(),
    }


# ---- Pushbox: a broadcast, woken through the wake worker
def _counted(notification_id: str, server_key: str, n: int) -> dict:
    """The notification's stats once woken + wake_failed reach n (StepFailed after
    STATS_LIMIT_S): the worker counts a batch after its pushes are settled."""
    deadline = time.monotonic() + STATS_LIMIT_S
    while True:
        r = requests.get(
            f"{harness.base_url()}/v1/notifications/{notification_id}",
            headers={"Authorization": f"Bearer {server_key}"},
            timeout=10,
        )
        stats = r.json() if r.status_code == 200 else {}
        if stats.get("woken", 0) + stats.get("wake_failed", 0) >= n:
            return stats
        if time.monotonic() > deadline:
            raise StepFailed(f"after {STATS_LIMIT_S} s the stats said {r.status_code} {r.text}")
        time.sleep(0.2)


def pushbox_once(standin: ApnsStandin, fleet: Fleet) -> dict:
    n = len(fleet.devices)
    standin.reset()
    server_key = fleet.app["server_key"]
    extra = standin.cpu_part()
    with harness.CpuMeter(extra) as whole:
        with harness.CpuMeter(extra) as answering:
            started = time.perf_counter()
            try:
                r = requests.post(
                    harness.base_url() + "/v1/broadcasts",
                    json={"title": TITLE, "body": harness.PAYLOAD_TEXT},
                    headers={"Authorization": f"Bearer {server_key}"},
                    timeout=BROADCAST_LIMIT_S,
                )
            except requests.Timeout:
                raise StepFailed(f"the broadcast got no answer in {BROADCAST_LIMIT_S} s") from None
            answered_at = time.time()
            answer_s = time.perf_counter() - started
        if r.status_code != 202 or r.json().get("targets") != n:
            what = f"{r.status_code} in {answer_s:.1f} s: {r.text}"
            raise StepFailed(f"the broadcast answered {what}")
        summary = standin.wait_for(n, WAKE_LIMIT_S)
        waking_s = summary["last_at"] - answered_at
        metered_s = time.perf_counter() - started
    stats = _counted(r.json()["id"], server_key, n)
    if summary["statuses"] != {"200": n} or stats.get("woken") != n:
        raise StepFailed(f"stand-in answered {summary['statuses']}; stats {stats}")
    return {
        "rate": n / waking_s,
        "s": round(waking_s, 3),
        "first_push_after_202_s": round(summary["first_at"] - answered_at, 3),
        "broadcast_answer_s": round(answer_s, 3),
        "broadcast_request_cpu_ms": {
            part: round(cpu * 1e3, 1) for part, cpu in answering.seconds.items()
        },
        "cpu_us_per_wake": whole.per(n),
        "busy_cores": busy(whole, metered_s),
        "woken": stats.get("woken"),
        "load": harness.load(),
    }


def warm_up(f: Fleet) -> float:
    """One raw persistent publish to the app's normal-lane fanout, not measured, until
    confirmed (StepFailed after BROADCAST_LIMIT_S): the first message into 10,000 fresh
    queues costs the broker far more than the next (BASELINE.md), and a fleet that
    `send` used has full high lanes beside them. Twice, in send then wake_rate on one
    fleet, the first broadcast was not confirmed within the API's 45 s (503)."""
    exchange = harness.names().broadcast_exchange(f.app_id, "normal")
    body, props = harness.pushbox_message("broadcast")
    done: list[float] = []

    def publish() -> None:
        ch = harness.rabbit_channel(confirm=True)
        try:
            started = time.perf_counter()
            ch.basic_publish(exchange, "", body, props)
            done.append(time.perf_counter() - started)
        finally:
            harness.close_channel(ch)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    thread.join(BROADCAST_LIMIT_S)
    if not done:
        raise StepFailed(
            f"a raw publish to {exchange} was not confirmed (limit {BROADCAST_LIMIT_S} s)"
        )
    return done[0]


def run(fleet: Fleet | None = None) -> list[Figure]:
    n = harness.FLEET_SIZE
    refusal = harness.fanout_refusal(n)
    if refusal is not None:
        return harness.record([_figure(None, None, {"devices": n, "failure": refusal})])
    try:
        with running() as standin, harness.fleet_of("wake", n, fleet, push_tokens=True) as f:
            return harness.record([_measure(standin, f)])
    except StepFailed as e:
        print(f"  NOT MEASURED: {e}", flush=True)
        return harness.record([_figure(None, None, {"devices": n, "failure": str(e)})])


def _measure(standin: ApnsStandin, f: Fleet) -> Figure:
    n = len(f.devices)
    standin.upload_credentials(f.app["server_key"])
    tokens = [d.push_token for d in f.devices if d.push_token]
    batch = raw_requests(standin, tokens)
    print(
        f"wake rate: broadcast to {n} devices with APNs tokens, {ROUNDS} rounds"
        f" (stand-in pid {standin.pid}, {IN_FLIGHT_MAX} in flight) ...",
        flush=True,
    )
    print("  warming the normal lanes up (one raw broadcast, not measured) ...", flush=True)
    lanes_warmup_s = warm_up(f)
    warmup = raw_once(standin, batch)
    ours: list[dict[str, Any]] = []
    raws: list[dict[str, Any]] = []
    failure = None
    try:
        for _ in range(ROUNDS):
            harness.settle_broker()  # what the last broadcast left the broker to do
            raws.append(raw_once(standin, batch))
            harness.settle_broker()
            ours.append(pushbox_once(standin, f))
            print(
                f"  pushbox {ours[-1]['rate']:.0f}/s ({ours[-1]['s']} s after a"
                f" {ours[-1]['broadcast_answer_s']} s broadcast), raw {raws[-1]['rate']:.0f}/s",
                flush=True,
            )
    except StepFailed as e:
        failure = f"after {len(ours)} Pushbox and {len(raws)} raw rounds: {e}"
        print(f"  NOT MEASURED: {failure}", flush=True)
    detail: dict[str, Any] = {
        "devices": n,
        "in_flight": IN_FLIGHT_MAX,
        "pushbox": ours,
        "raw": raws,
        "raw_warmup": warmup,
        "normal_lanes_warmup_publish_s": round(lanes_warmup_s, 2),
        "broker_open_files": harness.broker_open_files(),
    }
    raw_rate = harness.median(x["rate"] for x in raws) if raws else None
    if failure is not None:
        return _figure(None, raw_rate, {**detail, "failure": failure})
    value = harness.median(x["rate"] for x in ours)
    return _figure(value, raw_rate, detail)


def _figure(value: float | None, baseline: float | None, detail: dict) -> Figure:
    return Figure(
        "wake_rate",
        value,
        "wakes/s",
        baseline,
        f"plain httpx HTTP/2 to the same APNs stand-in, {IN_FLIGHT_MAX} in flight",
        True,
        command=harness.command("wake_rate"),
        target=">= 0.5x raw",
        met=value is not None and baseline is not None and value >= 0.5 * baseline,
        detail=detail,
    )


if __name__ == "__main__":
    harness.check_stack()
    harness.finish(run())
