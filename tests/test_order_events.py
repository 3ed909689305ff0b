"""Order events from other services become notifications; malformed ones are
dead-lettered and never block the next."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pika

from device_registry.topology import Topology
from dispatcher.bootstrap import bootstrap
from dispatcher.order_events import MalformedEvent, parse
from dispatcher.worker import Worker
from tests.support import eventually, new_app, register, take_all
from tests.tcp_proxy import TcpProxy


def publish_event(channel, settings, status: str, body: bytes | dict) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    channel.confirm_delivery()
    channel.basic_publish(
        settings.orders_exchange, f"order.{status}", raw, pika.BasicProperties(delivery_mode=2)
    )


def test_parse_accepts_the_contract_and_names_what_is_wrong():
    event = parse(b'{"app_id": 3, "user_id": "u", "order_id": "o-1", "status": "shipped"}')
    assert event.app_id == "3" and event.title is None
    assert event.content().data == {"order_id": "o-1", "status": "shipped"}
    assert event.content().priority == "high"
    assert (
        event.message_id
        == parse(
            b'{"app_id": "3", "user_id": "u", "order_id": "o-1", "status": "shipped"}'
        ).message_id
    )
    for bad, word in [
        (b"{", "JSON"),
        (b"[]", "object"),
        (b'{"app_id": "1", "user_id": "u", "status": "x"}', "order_id"),
        (b'{"app_id": "1", "user_id": "u", "order_id": "o", "status": ""}', "status"),
    ]:
        try:
            parse(bad)
            raise AssertionError(bad)
        except MalformedEvent as e:
            assert word in str(e)


def test_order_event_notifies_every_device_of_the_user(
    client, settings, stack, names, rabbit_channel
):
    shop = new_app(client, settings)
    phones = [register(client, shop, user_id="uma")[1]["device_id"] for _ in range(2)]
    publish_event(
        rabbit_channel,
        settings,
        "shipped",
        {
            "app_id": shop["id"],
            "user_id": "uma",
            "order_id": "A-17",
            "status": "shipped",
            "title": "On its way",
        },
    )
    for device_id in phones:
        got = eventually(lambda d=device_id: take_all(rabbit_channel, names, d))
        assert len(got) == 1
        m = got[0]
        assert m["priority"] == "high" and m["title"] == "On its way"
        assert m["data"] == {"order_id": "A-17", "status": "shipped"}


def test_malformed_event_is_dead_lettered_and_the_next_goes_through(
    client, settings, stack, names, rabbit_channel
):
    shop = new_app(client, settings)
    device_id = register(client, shop, user_id="vic")[1]["device_id"]
    publish_event(rabbit_channel, settings, "paid", b"this is not json")
    publish_event(rabbit_channel, settings, "paid", {"app_id": shop["id"], "user_id": "vic"})
    publish_event(
        rabbit_channel,
        settings,
        "paid",
        {"app_id": shop["id"], "user_id": "vic", "order_id": "B-2", "status": "paid"},
    )
    got = eventually(lambda: take_all(rabbit_channel, names, device_id))
    assert [m["data"]["order_id"] for m in got] == ["B-2"]

    def invalid_count() -> int:
        return rabbit_channel.queue_declare(
            names.invalid_order_events, passive=True
        ).method.message_count

    assert eventually(lambda: invalid_count() >= 2) is True
    bodies = []
    while (got := rabbit_channel.basic_get(names.invalid_order_events, auto_ack=True))[0]:
        bodies.append(got[2])
    assert b"this is not json" in bodies


def test_worker_survives_a_broker_outage(client, settings, names, rabbit_channel):
    proxy = TcpProxy("127.0.0.1", 5672)
    flaky = replace(
        settings,
        rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F",
        namespace=settings.namespace + "w",
        redis_prefix=settings.namespace + "w",
        orders_exchange=settings.orders_exchange + "w",
    )
    pushbox = bootstrap(flaky, role="test-worker")
    wnames, store, rabbit = pushbox.names, pushbox.store, pushbox.rabbit
    worker = Worker(flaky, pushbox.dispatch, pushbox.notifications)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        shop = new_app(client, settings)
        # a device in the worker's namespace: its topology declared there
        device = store.device(register(client, shop, user_id="wes")[1]["device_id"])
        from device_registry.services import route_of

        Topology(rabbit, wnames, flaky).ensure_device(route_of(device))
        assert eventually(lambda: _consuming(rabbit_channel, wnames))
        proxy.cut()
        proxy.restore()
        event = {"app_id": shop["id"], "user_id": "wes", "order_id": "C-3", "status": "late"}
        publish_event(rabbit_channel, flaky, "late", event)
        got = eventually(lambda: take_all(rabbit_channel, wnames, device.id))
        assert [m["data"]["order_id"] for m in got] == ["C-3"]
    finally:
        worker.stop()
        thread.join(5)
        proxy.close()
        pushbox.close()
        for q in (
            *wnames.device_queues(device.id),
            wnames.order_events_queue,
            wnames.invalid_order_events,
            wnames.dead_letter_queue,
            wnames.wake_queue,
        ):
            rabbit_channel.queue_delete(q)
        for x in (
            flaky.orders_exchange,
            wnames.invalid_order_events,
            wnames.dead_letter_exchange,
            wnames.events_exchange,
            wnames.direct_exchange("high"),
            wnames.direct_exchange("normal"),
            wnames.broadcast_exchange(shop["id"], "high"),
            wnames.broadcast_exchange(shop["id"], "normal"),
        ):
            rabbit_channel.exchange_delete(x)


def _consuming(channel, names) -> bool:
    probe = channel.connection.channel()  # a 404 closes the channel it happens on
    try:
        q = probe.queue_declare(names.order_events_queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        return False
    probe.close()
    return q.method.consumer_count == 1


def test_an_event_recorded_but_never_confirmed_is_sent_when_it_comes_back(
    client, settings, names, app, rabbit_channel
):
    from dispatcher import services
    from dispatcher.messages import build

    d = app.extensions["pushbox"]
    shop = new_app(client, settings)
    device_id = register(client, shop, user_id="zoe")[1]["device_id"]
    event = parse(
        json.dumps(
            {"app_id": shop["id"], "user_id": "zoe", "order_id": "Z-1", "status": "paid"}
        ).encode()
    )
    # a worker recorded it and died before the broker confirmed
    crashed = build("notification", event.content(), message_id=event.message_id)
    d.notifications.record(shop["id"], crashed, event.target(), 1, state="sending")
    services.notify(
        shop["id"], event.target(), event.content(), d=d.dispatch, message_id=event.message_id
    )
    assert [m["id"] for m in take_all(rabbit_channel, names, device_id)] == [event.message_id]
    # once confirmed, the same event again sends nothing
    services.notify(
        shop["id"], event.target(), event.content(), d=d.dispatch, message_id=event.message_id
    )
    assert take_all(rabbit_channel, names, device_id) == []
