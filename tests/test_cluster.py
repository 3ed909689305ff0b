"""Pushbox on a RabbitMQ cluster of the tests' own: three nodes with names, ports and a
folder of their own (never the machine's broker), started once for this module by
scripts/cluster.py, as `make cluster-up` starts its own, and removed at the end.

Marked `cluster`: `make test` (and so CI) runs them; `pytest -m "not cluster"` leaves
them out for a quicker run. Everything else in the suite keeps running against the
machine's broker.

What they prove (DESIGN.md, "Cluster"): every queue Pushbox declares is a quorum queue
with a member on each node, their leaders spread over the nodes; a quorum lane keeps
the backlog cap, the expiry and the dead-lettering of a classic one; and with the
whole stack under load (sends, syncs reading a backlog, devices waiting), a node
killed with SIGKILL loses no message answered 202, the API answers 503 with
Retry-After (never a 500) while it fails over, every kind of connection (the API's
channel pool, publisher and mailbox, the dispatcher's and the wake worker's
consumers) moves to a node that lives and works there, the reconciler finds no
drift, and the node rejoins, after which a second node can be killed the same way."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pika
import pytest
import requests

from bench import failover
from device_registry.reconciler import list_device_queues, reconcile
from device_registry.topology import Route
from dispatcher.bootstrap import bootstrap
from dispatcher.worker import Worker
from push_api.app import create_app
from pushbox_core.names import LANES, Names
from pushbox_core.schema import drop_database, migrate
from pushbox_core.settings import Settings
from scripts.cluster import Cluster
from tests.conftest import _clean_redis, settings_env, stack_of_its_own
from tests.support import bearer, eventually, new_app, register

pytestmark = pytest.mark.cluster

NODES = 3
# smaller than the bench's load: the same kinds of call, in less time
LOAD = failover.Load(
    waiting=16, draining=4, backlog=40, senders=4, send_pace_per_s=30, warmup_s=2, after_s=5
)
KINDS = (  # every connection a stack holds, by the name it gives the broker
    "pushbox-api",  # the API's channel pool
    "pushbox-api-publisher",
    "pushbox-mailbox",
    "pushbox-dispatcher-consumer",
    "pushbox-wakes-consumer",
)
MOVED_WITHIN_S = 30  # DESIGN.md: every connection moves within 30 s


def free_ports(n: int) -> list[int]:
    """n distinct free ports (held open together while they are picked)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    folder = Path(tempfile.mkdtemp(prefix="pushbox-cluster-"))
    ports = free_ports(2 * NODES)
    c = Cluster(
        folder,
        prefix=f"pbt{secrets.token_hex(3)}",
        size=NODES,
        amqp_ports=ports[:NODES],
        dist_ports=ports[NODES:],
    )
    started = time.monotonic()
    try:
        c.up()
        c.write_ctl()
        print(f"\ncluster of the tests formed in {time.monotonic() - started:.1f} s")
        yield c
    finally:
        pids = [p for p in (c.pid(n) for n in c.nodes) if p is not None]
        for pid in pids:  # its data goes with it: no need for a clean stop
            os.kill(pid, signal.SIGKILL)
        eventually(lambda: all(c.pid(n) is None for n in c.nodes), 30)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def on_cluster(settings: Settings, cluster: Cluster) -> Iterator[Settings]:
    """The run's settings on the cluster, with quorum queues, and a database, broker
    namespace and Redis prefix of their own (device ids must not meet the other
    tests' ones in Redis, nor their rows the reconciler's eye)."""
    s = replace(
        settings,
        rabbitmq_urls=",".join(cluster.urls),
        queue_type="quorum",
        rabbitmqctl=str(cluster.folder / "rabbitmqctl"),
        namespace=settings.namespace + "c",
        redis_prefix=settings.redis_prefix + "c",
        mysql_database=settings.mysql_database + "_cluster",
        orders_exchange=settings.orders_exchange + "c",
    )
    migrate(s)
    yield s
    drop_database(s)
    _clean_redis(s)


@pytest.fixture
def cluster_app(on_cluster: Settings):
    app = create_app(on_cluster)
    yield app
    app.extensions["pushbox"].close()


@pytest.fixture(scope="module")
def cluster_stack(on_cluster: Settings) -> Iterator[str]:
    """nginx and two API instances, the dispatcher and the wake worker on the cluster,
    each trying the nodes in the order given (spread_nodes=False): every connection
    starts on the first node."""
    env = settings_env(replace(on_cluster, device_backlog_max=10_000))
    with stack_of_its_own(env, spread_nodes=False) as st:
        st.up()
        yield f"http://127.0.0.1:{st.nginx_port}"


# ---- what the cluster says
def queues(cluster: Cluster, prefix: str) -> list[dict]:
    out = cluster.ctl(
        live(cluster)[0], "list_queues", "name", "type", "leader", "members", "--formatter", "json"
    )
    assert out.returncode == 0, out.stderr
    return [q for q in json.loads(out.stdout) if q["name"].startswith(prefix)]


def live(cluster: Cluster):
    return [n for n in cluster.nodes if cluster.pid(n) is not None]


def connections(cluster: Cluster) -> list[tuple[str, int]]:
    """(the connection's name, the AMQP port of the node it is on) for each one."""
    out = cluster.ctl(
        live(cluster)[0], "list_connections", "port", "client_properties", "--formatter", "json"
    )
    assert out.returncode == 0, out.stderr
    found = []
    for c in json.loads(out.stdout):
        props = {k: v for k, _type, v in c["client_properties"]}
        found.append((str(props.get("connection_name", "")), int(c["port"])))
    return found


def kind(name: str) -> str:
    return "pushbox-mailbox" if name.startswith("pushbox-mailbox-") else name


def kinds_by_port(cluster: Cluster) -> dict[str, set[int]]:
    found = collections.defaultdict(set)
    for name, port in connections(cluster):
        if kind(name) in KINDS:
            found[kind(name)].add(port)
    return found


def leaders(cluster: Cluster, prefix: str) -> collections.Counter:
    return collections.Counter(
        q["leader"] for q in queues(cluster, prefix) if ".device." in q["name"]
    )


# ---- the tests
def test_the_tests_start_a_cluster_of_their_own(cluster):
    members = cluster.members(cluster.nodes[0])
    assert members is not None
    disk, running = members
    assert running == disk == {n.nodename for n in cluster.nodes}
    assert all(n.amqp_port != 5672 and not n.nodename.startswith("rabbit@") for n in cluster.nodes)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for node in cluster.nodes:
        pid = cluster.pid(node)
        assert pid is not None
        env = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{pid}/environ").read_text(errors="replace").split("\0")
            if "=" in item
        )
        for where in ("RABBITMQ_MNESIA_BASE", "RABBITMQ_LOG_BASE", "RABBITMQ_CONFIG_FILE", "HOME"):
            assert env[where].startswith(str(cluster.folder)), where  # its cookie too
        limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
        files = next(int(line.split()[3]) for line in limits if line.startswith("Max open files"))
        assert files == hard or hard == resource.RLIM_INFINITY  # not the 1,024 su leaves
        if os.geteuid() == 0:
            assert Path(f"/proc/{pid}").stat().st_uid != 0  # user rabbitmq, not root


def test_every_queue_pushbox_declares_is_a_quorum_queue_and_leaders_spread_over_the_nodes(
    cluster, on_cluster, cluster_app
):
    client = cluster_app.test_client()
    shop = new_app(client, on_cluster)
    for _ in range(9):
        status, _ = register(client, shop)
        assert status == 201
    pb = cluster_app.extensions["pushbox"]
    pb.rabbit.call(Worker(on_cluster, pb.dispatch, pb.notifications).declare)
    pb.topology.ensure_globals()
    mine = queues(cluster, on_cluster.namespace + ".")
    names = Names(on_cluster.namespace, on_cluster.redis_prefix)
    own = {
        names.dead_letter_queue,
        names.wake_queue,
        names.order_events_queue,
        names.invalid_order_events,
    }
    assert own <= {q["name"] for q in mine}
    assert len([q for q in mine if ".device." in q["name"]]) >= 18
    for q in mine:
        assert q["type"] == "quorum", q
        assert len(q["members"]) == NODES, q  # a member on every node
    led = leaders(cluster, on_cluster.namespace + ".")
    assert set(led) == {n.nodename for n in cluster.nodes}, led
    assert max(led.values()) <= sum(led.values()) // 2, led  # no node leads most of them


def test_a_quorum_lane_caps_expires_and_dead_letters_as_a_classic_one(cluster, on_cluster):
    s = replace(
        on_cluster,
        namespace=on_cluster.namespace + "q",  # a dead-letter queue no worker reads
        device_backlog_max=3,
        device_queue_expires_s=1,
    )
    pb = bootstrap(s, role="test")
    try:
        names = pb.names
        pb.topology.ensure_device(Route("d1", "a1", None, ()))
        lane = names.device_queue("d1", "normal")

        def publish(message_id: str, expiration_ms: int | None = None) -> None:
            pb.rabbit.publish(
                names.direct_exchange("normal"),
                Names.device_key("d1"),
                b"{}",
                message_id=message_id,
                expiration_ms=expiration_ms,
            )

        dead: list[tuple[str, str]] = []

        def dead_letters(n: int) -> bool:
            """Until n have come to the dead-letter queue: (id, reason) of each."""

            def take(ch) -> None:
                while True:
                    method, props, _ = ch.basic_get(names.dead_letter_queue, auto_ack=True)
                    if method is None:
                        return
                    dead.append((props.message_id, props.headers["x-death"][0]["reason"]))

            pb.rabbit.call(take)
            return len(dead) >= n

        # the cap: the oldest go first (drop-head), dead-lettered as "maxlen" (counted
        # `dropped` by the dispatcher worker)
        for i in range(5):
            publish(f"m{i}")
        assert eventually(lambda: dead_letters(2), 10)
        assert dead == [("m0", "maxlen"), ("m1", "maxlen")]

        def take_lane(ch) -> list[str]:
            got = []
            while True:
                method, props, _ = ch.basic_get(lane)
                if method is None:
                    return got
                ch.basic_ack(method.delivery_tag)
                got.append(props.message_id)

        assert pb.rabbit.call(take_lane) == ["m2", "m3", "m4"]
        # per-message TTL (3.10 quorum queues have it): expired at the head without a
        # read, dead-lettered as "expired"
        publish("short", expiration_ms=50)
        publish("kept")
        assert eventually(lambda: dead_letters(3), 10)
        assert dead[2:] == [("short", "expired")]
        assert pb.rabbit.call(take_lane) == ["kept"]
        # x-expires: a lane nobody uses goes (looked at with rabbitmqctl: a declare
        # would count as a use)
        for other in LANES:
            assert eventually(
                lambda o=other: (
                    names.device_queue("d1", o)
                    not in {q["name"] for q in queues(cluster, s.namespace + ".")}
                ),
                60,
                every=2,
            )
    finally:
        pb.close()


@pytest.mark.timeout(900)
def test_killing_a_node_under_load_loses_nothing_then_it_rejoins_and_another_can_go(
    cluster, on_cluster, cluster_stack
):
    base = cluster_stack
    admin = bearer(on_cluster.admin_token)
    shop = requests.post(f"{base}/v1/apps", json={"name": "cluster"}, headers=admin, timeout=10)
    assert shop.status_code == 201
    app = shop.json()
    prefix = on_cluster.namespace + "."
    all_nodes = {n.nodename for n in cluster.nodes}
    victims: list[str] = []

    def kill_where_every_connection_is() -> None:
        """Called once the load runs: the node holding every kind of connection of the
        stack (the first node in round 1: the stack tries them in order; in round 2
        the one they all moved to) dies."""
        placed = kinds_by_port(cluster)
        ports = set().union(*placed.values())
        assert placed.keys() >= set(KINDS) and len(ports) == 1, placed
        victim = next(n for n in cluster.nodes if n.amqp_port in ports)
        victims.append(victim.nodename)
        cluster.kill(victim)

    for round_ in (1, 2):
        result = asyncio.run(
            failover.run(
                base, app["app_key"], app["server_key"], kill_where_every_connection_is, LOAD
            )
        )
        summary = result.summary()
        print(f"\nround {round_}, {victims[-1]} killed: {summary}")
        assert {k.split()[1] for k in result.answers} <= {"200", "202", "503"}, summary
        assert result.no_retry_after == 0, summary  # every 503 says when to come back
        assert not result.lost, summary  # every 202 reached its device
        assert result.all_answered_s is not None, summary  # each device, after the kill

        # every kind of connection works on a node that lives (they reconnect when
        # next used: these checks use each of them), and the broker agrees
        assert_dispatcher_and_wake_worker_consume(base, app, on_cluster)
        alive = {n.amqp_port for n in live(cluster)}
        moved = eventually(
            lambda a=alive: (
                (k := kinds_by_port(cluster)).keys() >= set(KINDS)
                and set().union(*k.values()) <= a
                and k
            ),
            MOVED_WITHIN_S,
        )
        assert moved, kinds_by_port(cluster)
        assert_no_drift(on_cluster)

        # the node comes back, rejoins, and leads queues again
        victim = cluster.node(victims[-1])
        did = cluster.up()
        assert f"started {victim.nodename} on 127.0.0.1:{victim.amqp_port}" in did
        members = cluster.members(cluster.nodes[0])
        assert members is not None and members[1] == all_nodes
        assert eventually(lambda: set(leaders(cluster, prefix)) == all_nodes, 60, every=2)
    assert victims[0] != victims[1]


def assert_dispatcher_and_wake_worker_consume(base: str, app: dict, s: Settings) -> None:
    """An order event becomes a notification (the dispatcher consumes), and a wake job
    leaves the wake queue (the wake worker consumes)."""
    user = f"u-{uuid.uuid4().hex[:6]}"
    reg = requests.post(
        f"{base}/v1/devices",
        json={"installation_id": uuid.uuid4().hex, "platform": "android", "user_id": user},
        headers={"X-App-Key": app["app_key"]},
        timeout=10,
    ).json()
    token = requests.post(f"{base}/v1/sessions", json=reg, timeout=10).json()["session_token"]
    names = Names(s.namespace, s.redis_prefix)
    conn = pika.BlockingConnection([pika.URLParameters(u) for u in s.broker_urls])
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        event = {"app_id": app["id"], "user_id": user, "order_id": "A-1", "status": "shipped"}
        ch.basic_publish(
            s.orders_exchange,
            "order.shipped",
            json.dumps(event).encode(),
            pika.BasicProperties(delivery_mode=2),
        )
        ch.basic_publish("", names.wake_queue, b"{}", pika.BasicProperties(delivery_mode=2))
        assert eventually(
            lambda: ch.queue_declare(names.wake_queue, passive=True).method.message_count == 0,
            MOVED_WITHIN_S,
        )
    finally:
        conn.close()

    def order_update() -> list[dict]:
        r = requests.post(
            f"{base}/v1/device/sync",
            json={"max": 10, "wait": 5},
            headers=bearer(token),
            timeout=30,
        )
        return r.json()["messages"] if r.status_code == 200 else []

    got = eventually(order_update, MOVED_WITHIN_S)
    assert got and got[0]["data"] == {"order_id": "A-1", "status": "shipped"}


def assert_no_drift(s: Settings) -> None:
    pb = bootstrap(s, role="reconciler")
    try:
        report = reconcile(
            store=pb.store,
            topology=pb.topology,
            names=pb.names,
            settings=s,
            queues=list_device_queues(s, pb.names),
        )
    finally:
        pb.close()
    assert report.listed_queues, "the cluster's rabbitmqctl did not list its queues"
    assert not (
        report.recreated or report.marked_stale or report.abandoned or report.orphan_queues_deleted
    ), report
