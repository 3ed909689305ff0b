"""Broadcast landing time: one broadcast to an app with 10,000 offline devices, from
the request until every device queue holds it.

The API answers 202 only once the broker confirmed the persistent message, which for
a fanout means every bound durable queue took it; after each answer the bench checks
with passive declares that every one of the app's normal-lane queues grew by
one (and, if one had not, polls until it has and counts that time).

Baseline, same run: raw pika, one persistent publish of the same message to the same
fanout exchange, until confirmed, checked the same way. One unmeasured raw publish
first (the first publish after declaring is much slower: BASELINE.md), then Pushbox
and raw alternate, ROUNDS each; the medians are reported."""

from __future__ import annotations

import time

import requests

from bench import harness
from bench.harness import Figure, Fleet

ROUNDS = 3
LANDING_LIMIT_S = 60


class NotLanded(Exception):
    pass


def _landed(base: dict[str, int], expected: int, started: float, answered: float) -> float:
    """Seconds from `started` until every queue holds `expected` messages more than in
    `base`: `answered`
    (the confirm or the 202) when the first check finds them all there, else the time
    of the first check that does (an upper bound: a check of 10,000 queues takes seconds)."""
    first = True
    while True:
        depths = harness.ready_counts(list(base))
        short = [q for q, n in base.items() if depths.get(q, 0) < n + expected]
        if not short:
            return answered if first else time.perf_counter() - started
        first = False
        if time.perf_counter() - started > LANDING_LIMIT_S:
            raise NotLanded(f"{len(short)} of {len(base)} queues short after {LANDING_LIMIT_S} s")
        time.sleep(0.05)


def run(fleet: Fleet | None = None) -> list[Figure]:
    refusal = harness.fanout_refusal(harness.FLEET_SIZE)
    if refusal is not None:
        return [_not_measured(refusal)]
    nm = harness.names()
    with harness.fleet_of("broadcast", harness.FLEET_SIZE, fleet) as f:
        queues = [nm.device_queue(d.id, "normal") for d in f.devices]
        base = harness.ready_counts(queues)
        exchange = nm.broadcast_exchange(f.app_id, "normal")
        ch = harness.rabbit_channel(confirm=True)
        http = requests.Session()
        auth = {"Authorization": f"Bearer {f.app['server_key']}"}
        expected = 0

        def raw_once() -> tuple[float, float]:
            body, props = harness.pushbox_message("broadcast")
            started = time.perf_counter()
            ch.basic_publish(exchange, "", body, props)
            confirmed = time.perf_counter() - started
            return confirmed, _landed(base, expected + 1, started, confirmed)

        def pushbox_once() -> tuple[float, float]:
            # no platform wake: this figure is the fanout alone, whether or not the
            # fleet has push tokens by now (wake_rate measures the wakes)
            body = {"title": "flash sale", "body": harness.PAYLOAD_TEXT, "wake": "none"}
            started = time.perf_counter()
            try:
                r = http.post(
                    harness.base_url() + "/v1/broadcasts",
                    json=body,
                    headers=auth,
                    timeout=LANDING_LIMIT_S,
                )
            except requests.Timeout:
                raise NotLanded(f"the broadcast got no answer in {LANDING_LIMIT_S} s") from None
            answered = time.perf_counter() - started
            if r.status_code != 202 or r.json()["targets"] != len(queues):
                raise NotLanded(
                    f"broadcast answered {r.status_code} after {answered:.1f} s: {r.text}"
                )
            return answered, _landed(base, expected + 1, started, answered)

        print(f"broadcast: {len(queues)} offline devices, {ROUNDS} rounds ...", flush=True)
        failure = None
        ours: list[tuple[float, float]] = []
        raws: list[tuple[float, float]] = []
        try:
            warmup = raw_once()
            expected += 1
            for _ in range(ROUNDS):
                ours.append(pushbox_once())
                expected += 1
                raws.append(raw_once())
                expected += 1
                print(f"  pushbox {ours[-1][1]:.3f} s, raw {raws[-1][1]:.3f} s", flush=True)
        except NotLanded as e:
            failure = f"after {len(ours)} Pushbox and {len(raws)} raw rounds: {e}"
            print(f"  NOT LANDED: {failure}", flush=True)
        harness.close_channel(ch)
    if failure is not None:
        baseline = harness.median(x[1] for x in raws) if raws else None
        return [_not_measured(failure, baseline, devices=len(queues))]
    value = harness.median(x[1] for x in ours)
    baseline = harness.median(x[1] for x in raws)
    detail = {
        "devices": len(queues),
        "pushbox_s": [round(x[1], 4) for x in ours],
        "pushbox_answer_s": [round(x[0], 4) for x in ours],
        "raw_s": [round(x[1], 4) for x in raws],
        "raw_confirm_s": [round(x[0], 4) for x in raws],
        "raw_first_publish_s": round(warmup[1], 4),
    }
    return [_figure(value, baseline, value <= 1.5 * baseline, detail)]


def _not_measured(
    failure: str, baseline: float | None = None, *, devices: int = harness.FLEET_SIZE
) -> Figure:
    return _figure(None, baseline, False, {"devices": devices, "failure": failure})


def _figure(value: float | None, baseline: float | None, met: bool, detail: dict) -> Figure:
    return Figure(
        "broadcast_landing_s",
        value,
        "s",
        baseline,
        "raw pika: one persistent publish to the same fanout exchange, until confirmed",
        False,
        command=harness.command("broadcast"),
        target="<= 1.5x raw",
        met=met,
        detail=detail,
    )


if __name__ == "__main__":
    harness.check_stack()
    harness.finish(run())
