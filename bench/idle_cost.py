"""Cost of an idle device at 10,000 devices: broker memory, MySQL bytes and Redis bytes
per registered device that opened a session and went quiet. No baselines.

- broker: the RabbitMQ node's Erlang memory (`rabbitmqctl status`, after a garbage
  collection of every process) before and after registering the devices, divided by
  their number; the detail also gives the `rabbitmq-diagnostics memory_breakdown`
  deltas and the sum of `rabbitmqctl list_queues memory` over the devices' two lanes.
  On a cluster, the sum over its nodes (the nodes the stack's URLs name, found by
  port): a quorum lane has a member, and its memory, on each of them.
- MySQL: data_length + index_length of the registry tables (information_schema,
  after ANALYZE TABLE) before and after, divided by the number of devices.
- Redis: MEMORY USAGE of each device's keys once it opened a session (the session,
  the device's session index, its presence), averaged; the detail also gives the
  INFO used_memory delta across opening the sessions.
A holder key (written by a sync) expires 5 minutes after the sync, so an idle device
does not keep one."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from bench import harness
from bench.harness import Figure, Fleet

TABLES = ("devices", "device_topics")
WAL_FLUSH_S = 20  # for the segment writers to take what the WAL held


@dataclass(frozen=True)
class Snapshot:
    erlang_bytes: int
    breakdown: dict[str, int]
    mysql_bytes: int
    redis_bytes: int


def broker_memory() -> tuple[int, dict[str, int]]:
    """Erlang memory of every node the stack uses (a cluster's, summed), after a
    garbage collection of every process, and its breakdown by kind, summed too. On
    quorum lanes the Raft WAL is rolled over first: until it is (at 64 MiB here), its
    in-memory tables keep every member's recent log entries, and registering 1,000
    devices left ~100 KB a device there that an idle device does not keep."""
    total = 0
    parts: dict[str, int] = {}
    nodes = harness.broker_nodes()
    if harness.settings().queue_type == "quorum":
        for node in nodes:
            node.run("-q", "eval", "ra_log_wal:force_roll_over(ra_log_wal).")
        time.sleep(WAL_FLUSH_S)
    for node in nodes:
        node.run("-q", "eval", "[garbage_collect(P) || P <- processes()], ok.")
        total += int(
            json.loads(node.run("-q", "status", "--formatter", "json"))["memory"]["total"]["erlang"]
        )
        breakdown = json.loads(
            node.run(
                "-q",
                "memory_breakdown",
                "--unit",
                "bytes",
                "--formatter",
                "json",
                tool="rabbitmq-diagnostics",
            )
        )
        for kind, v in breakdown.items():
            parts[kind] = parts.get(kind, 0) + int(v["bytes"])
    return total, parts


def mysql_bytes() -> int:
    s = harness.settings()
    conn = harness.mysql_connect(s)
    try:
        with conn.cursor() as cur:
            cur.execute("ANALYZE TABLE " + ", ".join(TABLES))
            cur.fetchall()
            cur.execute(
                "SELECT SUM(data_length + index_length) FROM information_schema.tables"
                " WHERE table_schema = %s AND table_name IN %s",
                (s.mysql_database, TABLES),
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def redis_used() -> int:
    return int(harness.redis_client(harness.settings()).info("memory")["used_memory"])


def snapshot() -> Snapshot:
    total, breakdown = broker_memory()
    return Snapshot(total, breakdown, mysql_bytes(), redis_used())


def queue_memory(fleet: Fleet) -> int:
    nm = harness.names()
    mine = {q for d in fleet.devices for q in nm.device_queues(d.id)}
    out = harness.broker_nodes()[0].run("-q", "list_queues", "name", "memory")
    total = 0
    for line in out.splitlines():
        name, _, mem = line.partition("\t")
        if name in mine and mem.strip().isdigit():
            total += int(mem)
    return total


def redis_keys_bytes(fleet: Fleet) -> int:
    """MEMORY USAGE summed over every device's keys."""
    s = harness.settings()
    nm = harness.names(s)
    r = harness.redis_client(s)
    total = 0
    ids = [d.id for d in fleet.devices]
    for keys in harness.device_redis_keys(r, nm, ids):
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key)
        total += sum(int(x or 0) for x in pipe.execute())
    return total


def figures(fleet: Fleet, before: Snapshot, after: Snapshot, redis_after: int) -> list[Figure]:
    """`before`: ahead of registering the fleet; `after`: once registered, before any
    session; `redis_after`: INFO used_memory once every device opened a session."""
    n = len(fleet.devices)
    cmd = harness.command("idle_cost")
    breakdown = {
        k: round((after.breakdown.get(k, 0) - before.breakdown.get(k, 0)) / n)
        for k in after.breakdown
    }
    queues = queue_memory(fleet)
    keys = redis_keys_bytes(fleet)
    common = {"devices": n, "queues_per_device": 2}
    return [
        Figure(
            "idle_device_broker_bytes",
            (after.erlang_bytes - before.erlang_bytes) / n,
            "bytes/device",
            None,
            None,
            False,
            command=cmd,
            detail={
                **common,
                "memory_breakdown_delta_per_device": breakdown,
                "list_queues_memory_per_device": round(queues / n),
            },
        ),
        Figure(
            "idle_device_mysql_bytes",
            (after.mysql_bytes - before.mysql_bytes) / n,
            "bytes/device",
            None,
            None,
            False,
            command=cmd,
            detail={**common, "tables": list(TABLES)},
        ),
        Figure(
            "idle_device_redis_bytes",
            keys / n,
            "bytes/device",
            None,
            None,
            False,
            command=cmd,
            detail={
                **common,
                "keys": "session, device-sessions index, presence",
                "used_memory_delta_per_device": round((redis_after - after.redis_bytes) / n),
            },
        ),
    ]


def run() -> list[Figure]:
    before = snapshot()
    with harness.fleet_of("idle-cost", harness.FLEET_SIZE) as f:
        after = snapshot()
        print("  opening a session for every device ...", flush=True)
        harness.open_sessions(f.devices)
        return figures(f, before, after, redis_used())


if __name__ == "__main__":
    harness.check_stack()
    harness.finish(run())
