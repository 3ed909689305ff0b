"""The shared publisher, against the real broker: many confirms in flight on one
connection, and a refusal, a return or a cut link fails only what it should."""

from __future__ import annotations

import threading
import uuid

import pika
import pytest

from pushbox_core import publisher as publisher_module
from pushbox_core.errors import BrokerUnavailable, DeliveryUnknown, NotDelivered
from pushbox_core.publisher import Publisher
from pushbox_core.rabbit import Nodes
from tests.support import eventually
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def topology(settings, rabbit_channel):
    """An exchange with one queue bound by key "ok" and one that refuses everything."""
    tag = uuid.uuid4().hex[:8]
    exchange = f"{settings.namespace}.pub.{tag}"
    ok, full = f"{exchange}.ok", f"{exchange}.full"
    rabbit_channel.exchange_declare(exchange, "direct")
    rabbit_channel.queue_declare(ok)
    rabbit_channel.queue_bind(ok, exchange, "ok")
    rabbit_channel.queue_declare(
        full, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    rabbit_channel.queue_bind(full, exchange, "full")
    yield exchange, ok
    for q in (ok, full):
        rabbit_channel.queue_delete(q)
    rabbit_channel.exchange_delete(exchange)


def publisher(url: str) -> Publisher:
    return Publisher(Nodes(url, name="test-publisher", heartbeat_s=60))


def props() -> pika.BasicProperties:
    return pika.BasicProperties(delivery_mode=2, message_id=uuid.uuid4().hex)


def publish_from_threads(pub: Publisher, exchange: str, keys: list[str]) -> list[object]:
    results: list[object] = [None] * len(keys)

    def one(i: int) -> None:
        try:
            pub.publish(exchange, keys[i], b"{}", props(), mandatory=True)
            results[i] = "confirmed"
        except Exception as e:  # noqa: BLE001 - recorded for the assertions
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(keys))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_publishes_are_each_confirmed_and_a_return_fails_only_its_own(
    settings, topology, rabbit_channel
):
    exchange, ok = topology
    pub = publisher(settings.rabbitmq_url)
    keys = ["ok"] * 30 + ["nowhere"] * 5
    results = publish_from_threads(pub, exchange, keys)
    assert results[:30] == ["confirmed"] * 30
    for r in results[30:]:
        assert isinstance(r, NotDelivered) and "no queue took" in str(r)
    assert rabbit_channel.queue_declare(ok, passive=True).method.message_count == 30
    pub.close()


def test_a_nack_is_unconfirmed_and_fails_only_its_own(settings, topology):
    # a queue that could not take it; another one it was routed to may have (and a
    # quorum queue nacks while it has no leader): sent again under its id, not given up
    exchange, _ = topology
    pub = publisher(settings.rabbitmq_url)
    with pytest.raises(DeliveryUnknown) as refused:
        pub.publish(exchange, "full", b"{}", props(), mandatory=True)
    assert "refused" in refused.value.detail
    pub.publish(exchange, "ok", b"{}", props(), mandatory=True)  # the link is fine
    pub.close()


def test_a_missing_exchange_is_not_delivered_and_the_next_publish_reconnects(settings, topology):
    exchange, _ = topology
    pub = publisher(settings.rabbitmq_url)
    with pytest.raises(NotDelivered, match="does not exist"):
        pub.publish(exchange + ".gone", "ok", b"{}", props(), mandatory=True)
    pub.publish(exchange, "ok", b"{}", props(), mandatory=True)
    pub.close()


def test_a_cut_link_fails_fast_and_the_publisher_comes_back(settings, topology):
    exchange, ok = topology
    proxy = TcpProxy("127.0.0.1", 5672)
    try:
        pub = publisher(f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
        pub.publish(exchange, "ok", b"{}", props(), mandatory=True)
        proxy.cut()
        with pytest.raises(BrokerUnavailable):
            pub.publish(exchange, "ok", b"{}", props(), mandatory=True)
        proxy.restore()
        pub.publish(exchange, "ok", b"{}", props(), mandatory=True)
        pub.close()
    finally:
        proxy.close()


def test_a_publish_the_broker_took_and_never_confirmed_may_be_delivered(
    settings, topology, rabbit_channel, monkeypatch
):
    exchange, ok = topology
    monkeypatch.setattr(publisher_module, "CONFIRM_TIMEOUT_S", 1.0)
    proxy = TcpProxy("127.0.0.1", 5672)
    pub = publisher(f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
    try:
        pub.publish(exchange, "ok", b"{}", props(), mandatory=True)
        proxy.hold_replies()  # the broker gets the publish; its confirm never comes back
        held = props()
        with pytest.raises(DeliveryUnknown):
            pub.publish(exchange, "ok", b"{}", held, mandatory=True)
        # and it was right not to call it lost: the broker has it
        ids = []
        while (got := rabbit_channel.basic_get(ok, auto_ack=True))[0] is not None:
            ids.append(got[1].message_id)
        assert held.message_id in ids
    finally:
        proxy.release_replies()
        pub.close()
        proxy.close()


def test_a_publish_never_written_is_unavailable_not_unknown(settings, topology):
    exchange, _ = topology
    proxy = TcpProxy("127.0.0.1", 5672)
    proxy.cut()  # nothing can connect
    pub = publisher(f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
    try:
        with pytest.raises(BrokerUnavailable) as raised:
            pub.publish(exchange, "ok", b"{}", props(), mandatory=True)
        assert not isinstance(raised.value, DeliveryUnknown)
    finally:
        pub.close()
        proxy.close()


def test_a_link_lost_while_a_publish_waits_for_its_confirm_leaves_it_unknown(settings, topology):
    exchange, _ = topology
    proxy = TcpProxy("127.0.0.1", 5672)
    pub = publisher(f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
    try:
        pub.publish(exchange, "ok", b"{}", props(), mandatory=True)
        proxy.hold_replies()
        outcome: list[BaseException] = []

        def waiting() -> None:
            try:
                pub.publish(exchange, "ok", b"{}", props(), mandatory=True)
            except BaseException as e:  # noqa: BLE001 - recorded for the assertion
                outcome.append(e)

        t = threading.Thread(target=waiting)
        t.start()
        link = pub._link
        assert link is not None
        assert eventually(lambda: link._unconfirmed)  # written; its confirm held back
        proxy.cut()
        t.join(10)
        assert len(outcome) == 1 and isinstance(outcome[0], DeliveryUnknown), outcome
    finally:
        pub.close()
        proxy.close()
