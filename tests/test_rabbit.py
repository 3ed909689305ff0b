"""The broker's nodes as a process reaches them (pushbox_core.rabbit.Nodes, and the
order `make up` gives each program): the node a connection last opened on is tried
first by every later connection of the process; a node that refuses costs nothing
more than a refused attempt. Against the machine's broker and a port nobody listens
on (the cluster itself: tests/test_cluster.py)."""

from __future__ import annotations

from pathlib import Path

import pika

from pushbox_core.rabbit import Nodes, Rabbit
from scripts.stack import Stack
from tests.conftest import free_port


def ports(nodes: Nodes) -> list[int]:
    return [p.port for p in nodes.params()]


def test_connections_skip_a_node_that_refuses_and_the_process_then_tries_the_live_one_first(
    settings,
):
    dead = free_port()  # nobody listens there
    urls = [f"amqp://guest:guest@127.0.0.1:{dead}/%2F", settings.rabbitmq_url]
    live = pika.URLParameters(settings.rabbitmq_url).port
    nodes = Nodes(urls, name="test-nodes", heartbeat_s=60)
    assert ports(nodes) == [dead, live]  # the order given
    conn = nodes.connect()
    try:
        assert conn.is_open
    finally:
        conn.close()
    assert ports(nodes) == [live, dead]
    # every other kind of connection of the process to these nodes follows
    assert ports(Nodes(urls, name="test-other", heartbeat_s=600)) == [live, dead]
    rabbit = Rabbit(urls, name="test-pool")
    try:
        assert rabbit.queue_depth("amq.nonexistent.queue") is None  # it answered
    finally:
        rabbit.close()


def test_each_program_of_a_stack_tries_the_nodes_from_another_one_first():
    urls = ["amqp://a/%2F", "amqp://b/%2F", "amqp://c/%2F"]
    env = {"PUSH_RABBITMQ_URLS": ",".join(urls), "PUSH_QUEUE_TYPE": "quorum"}
    spread = Stack(Path("/nonexistent"), env, api_ports=(1, 2)).programs()
    pushbox = [p for p in spread if p.name != "nginx"]
    assert [p.name for p in pushbox] == ["api-1", "api-2", "dispatcher", "wakes", "campaigns"]
    firsts = [p.env["PUSH_RABBITMQ_URLS"].split(",")[0] for p in pushbox]
    assert firsts == [urls[0], urls[1], urls[2], urls[0], urls[1]]
    for p in pushbox:  # each program's own, whatever supervisord was started with
        assert sorted(p.env["PUSH_RABBITMQ_URLS"].split(",")) == urls
        assert p.env["PUSH_QUEUE_TYPE"] == "quorum"
        assert p.env["PUSH_RABBITMQ_URL"] == ""  # unset: written out empty
    in_order = Stack(Path("/nonexistent"), env, api_ports=(1, 2), spread_nodes=False)
    assert {p.env.get("PUSH_RABBITMQ_URLS") for p in in_order.programs() if p.name != "nginx"} == {
        ",".join(urls)
    }
