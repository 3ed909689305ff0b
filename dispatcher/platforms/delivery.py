"""One push, tried until it is settled: retried with backoff while the platform says
"retry" (429, 5xx, network), honouring Retry-After."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from dispatcher.platforms.push import Outcome, PlatformClient, Push

ATTEMPTS = 5
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 60.0  # also the most a Retry-After is waited for


def backoff_s(attempt: int) -> float:
    """Exponential with jitter: about 0.5, 1, 2, 4 s ... after attempts 1, 2, 3, 4."""
    base = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1))
    return base * random.uniform(0.75, 1.0)


def delay_s(outcome: Outcome, attempt: int) -> float:
    if outcome.retry_after_s is not None:
        return min(BACKOFF_MAX_S, max(0.0, outcome.retry_after_s))
    return backoff_s(attempt)


async def deliver(
    client: PlatformClient,
    push: Push,
    *,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> Outcome:
    """The push's final outcome: anything but "retry". Retries exhausted is "failed"
    with reason "retries exhausted" (the last answer in `detail`)."""
    outcome = Outcome("failed", "retries exhausted")
    for attempt in range(1, attempts + 1):
        outcome = await client.send(push)
        if outcome.result != "retry":
            return outcome
        if attempt < attempts:
            await sleep(delay_s(outcome, attempt))
    last = outcome.detail or outcome.reason
    return Outcome("failed", "retries exhausted", detail=f"after {attempts} attempts: {last}")


__all__ = ["ATTEMPTS", "BACKOFF_MAX_S", "backoff_s", "deliver", "delay_s"]
