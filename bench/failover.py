"""Losing a RabbitMQ node under load: `python -m bench.failover`, against a stack on a
cluster (`make cluster-up`, then `make up` with the settings it printed).

While devices wait in long polls, a few drain a backlog, and senders send to all of
them, one node is killed (SIGKILL, by the pid of the process listening on its port).
At that moment every device is sent one message more, of high priority (so it overtakes
a backlog), sent again at once after a 503 with the same Idempotency-Key (as a client
honouring Retry-After would, only sooner).
Measured, from the clients' side:
- `failover_unavailable_s`: from the kill to the last 503 any call got (sends and
  syncs, each also in the detail);
- `failover_all_answered_s`: from the kill until every device had received the
  message sent to it at the kill;
- every answer, by call and status; and every message answered 202 that never reached
  its device (there must be none: a 202 is a promise, and so is the absence of a 500;
  `tests/test_cluster.py` runs the same load and asserts both).
The node is started again afterwards (`make cluster-up`: it rejoins the others).

The same load runs in the tests (`run`), against the test's own cluster and stack."""

from __future__ import annotations

import asyncio
import collections
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.client import Answer, Connection, HttpError, bearer

WAIT_S = 20
DRAIN_MAX = 10
DRAIN_PAUSE_S = 0.15  # between a draining device's syncs (its rate limit: 10 a second)


@dataclass(frozen=True)
class Load:
    waiting: int = 40  # devices in long polls
    draining: int = 10  # devices reading a backlog, a small batch at a time
    backlog: int = 200  # messages each draining device holds when the load starts
    senders: int = 4
    send_pace_per_s: float = 40  # over all senders
    warmup_s: float = 3.0
    after_s: float = 8.0  # sends go on this long after the kill
    settle_limit_s: float = 120.0  # for every message answered 202 to arrive


RETRY_S = 0.2  # after a 503: sooner than Retry-After says, to see when it ends
DRAIN_USER = "failover-backlog"


@dataclass
class Phone:
    device_id: str
    token: str
    drains: bool = False


@dataclass
class Failover:
    """What one kill looked like from the clients' side."""

    killed_at: float = 0.0  # perf_counter
    answers: collections.Counter = field(default_factory=collections.Counter)
    sent: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))
    maybe: set[str] = field(default_factory=set)  # ids a 503 named: they may arrive
    received: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))
    unavailable: dict[str, list[float]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )  # by call: seconds after the kill of each 503
    no_retry_after: int = 0  # 503s without a Retry-After header
    after_sent: dict[str, str] = field(default_factory=dict)  # device: its message at the kill
    received_at: dict[str, float] = field(default_factory=dict)  # id: s after the kill
    errors: collections.Counter = field(default_factory=collections.Counter)
    settled_s: float | None = None  # from the kill until every 202'd message had arrived
    examples: list[str] = field(default_factory=list)  # answers other than 200 and 202

    @property
    def lost(self) -> dict[str, set[str]]:
        """Messages answered 202 that never reached their device."""
        return {d: ids - self.received[d] for d, ids in self.sent.items() if ids - self.received[d]}

    @property
    def unavailable_s(self) -> float:
        return max((t for ts in self.unavailable.values() for t in ts), default=0.0)

    @property
    def after_received(self) -> dict[str, float]:
        """Device: seconds from the kill until it had the message sent to it then."""
        return {d: self.received_at[i] for d, i in self.after_sent.items() if i in self.received_at}

    @property
    def all_answered_s(self) -> float | None:
        answered = self.after_received
        if not self.after_sent or len(answered) < len(self.after_sent):
            return None
        return max(answered.values())

    def summary(self) -> dict:
        return {
            "answers": dict(sorted(self.answers.items())),
            "unavailable_s": round(self.unavailable_s, 2),
            "unavailable_s_by_call": {
                call: round(max(ts), 2) for call, ts in sorted(self.unavailable.items())
            },
            "all_answered_s": None
            if self.all_answered_s is None
            else round(self.all_answered_s, 2),
            "answered_202": sum(len(ids) for ids in self.sent.values()),
            "lost_202": sum(len(ids) for ids in self.lost.values()),
            "named_by_a_503": len(self.maybe),
            "no_retry_after": self.no_retry_after,
            "settled_s": None if self.settled_s is None else round(self.settled_s, 2),
            "errors": dict(self.errors),
            "examples": self.examples[:5],
        }


class _Load:
    def __init__(self, base: str, server_key: str, phones: list[Phone], result: Failover):
        self.base = base
        self.auth = bearer(server_key)
        self.phones = phones
        self.r = result
        self.stopping = asyncio.Event()  # senders stop
        self.hanging_up = asyncio.Event()  # phones stop
        self.loop = asyncio.get_running_loop()

    def _since_kill(self) -> float | None:
        return time.perf_counter() - self.r.killed_at if self.r.killed_at else None

    def _note(self, call: str, a: Answer) -> None:
        self.r.answers[f"{call} {a.status}"] += 1
        if a.status not in (200, 202) and len(self.r.examples) < 20:
            self.r.examples.append(
                f"{call} {a.status} {a.headers.get('retry-after')} {a.body[:200]!r}"
            )
        if a.status == 503:
            if "retry-after" not in a.headers:
                self.r.no_retry_after += 1
            since = self._since_kill()
            if since is not None:
                self.r.unavailable[call].append(since)

    async def send(
        self,
        c: Connection,
        phone: Phone,
        title: str,
        key: str | None = None,
        priority: str = "normal",
    ) -> str:
        """One notification to the phone, sent again after each 503 until a 202 (or
        another answer, returned as ""): its id."""
        headers = dict(self.auth)
        if key is not None:
            headers["Idempotency-Key"] = key
        body = {"to": {"device_id": phone.device_id}, "title": title, "priority": priority}
        while True:
            try:
                a = await c.request("POST", "/v1/notifications", body, headers, timeout=60)
            except HttpError as e:
                self.r.errors[f"send {str(e)[-60:]}"] += 1
                await asyncio.sleep(RETRY_S)
                continue
            self._note("send", a)
            if a.status == 202:
                message_id = a.json()["id"]
                self.r.sent[phone.device_id].add(message_id)
                return message_id
            if a.status == 503:
                named = a.json().get("id")
                if named:
                    self.r.maybe.add(named)
                if key is None:
                    return ""  # a plain sender moves on; the kill-time message insists
                await asyncio.sleep(RETRY_S)
                continue
            return ""

    async def phone_loop(self, phone: Phone) -> None:
        c = Connection(self.base)
        ack: list[str] = []
        draining = phone.drains
        try:
            while not self.hanging_up.is_set():
                wait = 0 if draining else WAIT_S
                body = {"ack": ack, "max": DRAIN_MAX if draining else 100, "wait": wait}
                try:
                    a = await self._sync(c, phone, body, wait)
                except HttpError as e:
                    self.r.errors[f"sync {str(e)[-60:]}"] += 1
                    await asyncio.sleep(RETRY_S)
                    continue
                if a is None:
                    break
                self._note("sync", a)
                if a.status != 200:
                    await asyncio.sleep(RETRY_S)  # the acks go again with the next sync
                    continue
                messages = a.json()["messages"]
                now = self._since_kill()
                for m in messages:
                    self.r.received[phone.device_id].add(m["id"])
                    if now is not None:
                        self.r.received_at.setdefault(m["id"], now)
                ack = [m["id"] for m in messages]
                if draining and not messages:
                    draining = False  # caught up: from now on it waits like the others
                elif draining:
                    await asyncio.sleep(DRAIN_PAUSE_S)
        finally:
            c.close()

    async def _sync(self, c: Connection, phone: Phone, body: dict, wait: float) -> Answer | None:
        """A sync, given up (None) once the phones hang up."""
        request = asyncio.ensure_future(
            c.request("POST", "/v1/device/sync", body, bearer(phone.token), timeout=wait + 40)
        )
        hang_up = asyncio.ensure_future(self.hanging_up.wait())
        done, _ = await asyncio.wait({request, hang_up}, return_when=asyncio.FIRST_COMPLETED)
        hang_up.cancel()
        if request in done:
            return request.result()
        request.cancel()
        return None

    async def sender(self, k: int, pace: float) -> None:
        c = Connection(self.base)
        rng = random.Random(k)
        try:
            n = 0
            start = self.loop.time()
            while not self.stopping.is_set():
                n += 1
                await asyncio.sleep(max(0.0, start + n / pace - self.loop.time()))
                await self.send(c, rng.choice(self.phones), f"load {k}-{n}")
        finally:
            c.close()

    async def after_kill(self, phone: Phone) -> None:
        c = Connection(self.base)
        try:
            key = f"failover-{uuid.uuid4().hex}"
            # high: ahead of a draining phone's backlog, so that it measures the failover
            message_id = await self.send(c, phone, "sent at the kill", key, "high")
            self.r.after_sent[phone.device_id] = message_id
        finally:
            c.close()


async def _json(c: Connection, method: str, path: str, body: dict, headers: dict) -> dict:
    a = await c.request(method, path, body, headers)
    if a.status not in (200, 201, 202):
        raise RuntimeError(f"{method} {path}: {a.status} {a.body[:200]!r}")
    return a.json()


async def prepare(
    base: str, app_key: str, server_key: str, load: Load
) -> tuple[list[Phone], list[str]]:
    """The load's phones, registered, with sessions; the draining ones (one user) hold
    `backlog` messages each: the phones and the ids of those messages."""
    c = Connection(base)
    tag = uuid.uuid4().hex[:8]
    phones: list[Phone] = []
    backlog: list[str] = []
    try:
        for i in range(load.waiting + load.draining):
            drains = i >= load.waiting
            body: dict = {"installation_id": f"failover-{tag}-{i}", "platform": "android"}
            if drains:
                body["user_id"] = DRAIN_USER
            reg = await _json(c, "POST", "/v1/devices", body, {"X-App-Key": app_key})
            session = await _json(c, "POST", "/v1/sessions", reg, {})
            phones.append(Phone(str(reg["device_id"]), session["session_token"], drains))
        for n in range(load.backlog if load.draining else 0):
            sent = await _json(
                c,
                "POST",
                "/v1/notifications",
                {"to": {"user_id": DRAIN_USER}, "title": f"backlog {n}", "priority": "normal"},
                bearer(server_key),
            )
            backlog.append(sent["id"])
    finally:
        c.close()
    return phones, backlog


async def run(
    base: str, app_key: str, server_key: str, kill: Callable[[], object], load: Load = Load()
) -> Failover:
    """The load, the kill (`kill()`, called once, `warmup_s` into the load) and the
    accounting; returns once every message answered 202 arrived, or `settle_limit_s`
    after the kill."""
    phones, backlog = await prepare(base, app_key, server_key, load)
    result = Failover()
    clients = _Load(base, server_key, phones, result)
    for p in phones:
        if p.drains:
            result.sent[p.device_id].update(backlog)
    devices = [asyncio.ensure_future(clients.phone_loop(p)) for p in phones]
    pace = load.send_pace_per_s / load.senders
    senders = [asyncio.ensure_future(clients.sender(k, pace)) for k in range(load.senders)]
    await asyncio.sleep(load.warmup_s)
    await clients.loop.run_in_executor(None, kill)
    result.killed_at = time.perf_counter()
    await asyncio.gather(*(clients.after_kill(p) for p in phones))
    await asyncio.sleep(max(0.0, load.after_s - (time.perf_counter() - result.killed_at)))
    clients.stopping.set()
    await asyncio.gather(*senders)
    deadline = time.perf_counter() + load.settle_limit_s
    while result.lost and time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
    if not result.lost:
        result.settled_s = time.perf_counter() - result.killed_at
    clients.hanging_up.set()
    await asyncio.gather(*devices)
    return result


def main() -> None:  # pragma: no cover - a benchmark, run by hand
    from bench import harness
    from scripts import cluster as project_cluster

    harness.check_stack()
    nodes = harness.broker_nodes()
    if len(nodes) < 3:
        sys.exit("bench.failover needs the stack on a 3-node cluster: make cluster-up")
    victim = nodes[int(sys.argv[1]) if len(sys.argv) > 1 else 0]
    local = project_cluster.local()
    if victim.nodename not in {n.nodename for n in local.nodes}:
        sys.exit(f"{victim.nodename} is not a node of make cluster-up's: not killing it")
    app = harness.create_app("failover")
    load = Load()
    print(f"  killing {victim.nodename} (pid {victim.pid}) {load.warmup_s:g} s into the load ...")
    result = asyncio.run(
        run(harness.base_url(), app["app_key"], app["server_key"], victim.kill, load)
    )
    print("  starting it again (make cluster-up) ...", flush=True)
    started = time.perf_counter()
    local.up()
    rejoined_s = time.perf_counter() - started
    detail = {**result.summary(), "killed": victim.nodename, "rejoined_s": round(rejoined_s, 1)}
    cmd = harness.command("failover")
    harness.finish(
        [
            harness.Figure(
                "failover_unavailable_s",
                result.unavailable_s,
                "s",
                None,
                None,
                False,
                command=cmd,
                target="503 for at most a few seconds; no 500, no lost 202",
                met=result.unavailable_s < 30
                and not result.lost
                and not any(k.endswith(" 500") for k in result.answers),
                detail=detail,
            ),
            harness.Figure(
                "failover_all_answered_s",
                result.all_answered_s,
                "s",
                None,
                None,
                False,
                command=cmd,
                detail={"devices": load.waiting + load.draining},
            ),
        ]
    )


if __name__ == "__main__":
    main()
