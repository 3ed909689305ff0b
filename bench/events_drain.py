"""What `notification.acked` events cost a drain: bench.drain's drain (one device, a
10,000-message backlog, synced and acked through nginx with `max` 500), measured
without and with another service's queue bound to `#` on `<ns>.events` (a consumer
reading it, as a real subscriber would), ROUNDS of each, interleaved; medians
reported. Without a bound queue the broker drops the events it routes nowhere; with
one, every ack reaches it, batched (pushbox_core.events: one event per app per tally
flush, up to 1,000 acks each). The issue's target: the drain loses less than 10%."""

from __future__ import annotations

import threading
import time

import pika

from bench import drain, harness
from bench.harness import Figure
from sdk_stub import Phone

ROUNDS = 4


class Subscriber:
    """Another service: a queue bound to `#`, read in a thread of its own; counts the
    events and the acks they carry."""

    def __init__(self, exchange: str):
        self.events = self.acks = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._exchange = exchange
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the subscriber could not bind its queue")

    def _run(self) -> None:
        import json

        conn = pika.BlockingConnection(pika.URLParameters(harness.settings().rabbitmq_url))
        ch = conn.channel()
        ch.exchange_declare(self._exchange, "topic", durable=True)
        queue = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(queue, self._exchange, "#")

        def on_event(_ch, _method, _props, body: bytes) -> None:
            self.events += 1
            self.acks += len(json.loads(body).get("acks", ()))

        ch.basic_consume(queue, on_event, auto_ack=True)
        self._ready.set()
        while not self._stop.is_set():
            conn.process_data_events(time_limit=0.1)
        conn.close()  # the exclusive queue goes with it

    def wait_for_acks(self, n: int, limit_s: float = 20.0) -> None:
        deadline = time.monotonic() + limit_s
        while self.acks < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"heard {self.acks} acks of {n} in {limit_s:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def median_cpu(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {part: round(harness.median(r[part] for r in rounds), 1) for part in rounds[0]}


def run() -> list[Figure]:
    nm = harness.names()
    without: list[float] = []
    with_queue: list[float] = []
    cpu: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    heard = []
    with harness.fleet_of("events-drain", 0) as fleet:
        phone = Phone(harness.base_url(), fleet.app["app_key"])
        phone.open_session()
        assert phone.device_id is not None and phone.state.device_secret is not None
        fleet.devices.append(harness.Device(phone.device_id, phone.state.device_secret))
        drain.ensure_backlog_cap(phone.device_id, fleet.app_id)
        key = nm.device_key(phone.device_id)
        print(f"events drain: {drain.BACKLOG} messages, {ROUNDS} rounds ...", flush=True)
        for i in range(ROUNDS):
            for bound in (False, True) if i % 2 == 0 else (True, False):  # either first
                subscriber = Subscriber(nm.events_exchange) if bound else None
                drain.fill(key)
                with harness.CpuMeter() as meter:
                    rate = drain.pushbox_drain(phone)
                cpu[bound].append(meter.per(drain.BACKLOG))
                (with_queue if bound else without).append(rate)
                if subscriber is not None:
                    # the last flush's events may be on their way: every ack is heard
                    subscriber.wait_for_acks(drain.BACKLOG)
                    subscriber.stop()
                    heard.append((subscriber.events, subscriber.acks))
            print(
                f"  no queue bound {without[-1]:.0f}/s, queue bound to # {with_queue[-1]:.0f}/s"
                f" ({heard[-1][0]} events carrying {heard[-1][1]} acks)",
                flush=True,
            )
    value, base = harness.median(with_queue), harness.median(without)
    return [
        Figure(
            "drain_rate_with_events_queue",
            value,
            "msgs/s",
            base,
            "the same drain, no queue bound to <ns>.events, same run, interleaved",
            True,
            command=harness.command("events_drain"),
            target=">= 0.9x (events cost the drain under 10%)",
            met=value >= 0.9 * base,
            detail={
                "backlog": drain.BACKLOG,
                "max": drain.MAX,
                "no_queue_bound": [round(x) for x in without],
                "queue_bound_to_hash": [round(x) for x in with_queue],
                "events_and_acks_heard": heard,
                # CPU of each part of the stack a message, median over the rounds: less
                # at the mercy of other load on the machine than the rates
                "cpu_us_per_message_no_queue_bound": median_cpu(cpu[False]),
                "cpu_us_per_message_queue_bound": median_cpu(cpu[True]),
            },
        )
    ]


if __name__ == "__main__":
    harness.check_stack()
    harness.finish(run())
