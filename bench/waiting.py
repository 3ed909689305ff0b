"""Concurrent waiting devices: the most long-polling devices the two API instances
hold while wake-up p99 stays under 1 s (and every sync and send succeeds).

Steps of STEPS waiting devices (the wake-up bench's machinery: each step sends SAMPLES
notifications to distinct waiting devices at PACE_PER_S, then wakes and releases
everyone); the figure is the largest step that passed. A step fails on an error, a
notification never answered, p99 over the limit, or by running longer than
`wakeup.RUN_TIMEOUT_S` (every request has a timeout of its own too). No baseline."""

from __future__ import annotations

from bench import harness, wakeup
from bench.harness import Figure, Fleet

STEPS = (1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000)
SAMPLES = 200
PACE_PER_S = 50
P99_LIMIT_MS = 1_000


def run(fleet: Fleet | None = None) -> list[Figure]:
    steps: list[dict] = []
    best = 0
    failed_at: dict | None = None
    with harness.fleet_of("waiting", max(STEPS), fleet) as f:
        print(f"waiting devices: steps {STEPS} ...", flush=True)
        harness.open_sessions(f.devices)
        for n in STEPS:
            r = wakeup.measure(f, f.devices[:n], samples=SAMPLES, pace=PACE_PER_S)
            s = r.summary()
            steps.append(s)
            ok = r.p(99) < P99_LIMIT_MS and not r.errors and not r.missing
            print(f"  {n}: {'ok' if ok else 'FAILED'} {s}", flush=True)
            if not ok:
                failed_at = s
                break
            best = n
    return [
        Figure(
            "waiting_devices",
            float(best),
            "devices",
            None,
            None,
            True,
            command=harness.command("waiting"),
            target=">= 5,000",
            met=best >= 5_000,
            detail={"steps": steps, "failed_at": failed_at, "p99_limit_ms": P99_LIMIT_MS},
        )
    ]


if __name__ == "__main__":
    harness.check_stack()
    harness.finish(run())
