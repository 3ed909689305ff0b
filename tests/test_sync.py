"""The delivery contract, bullet by bullet, as phones meet it: through nginx and both
API instances, with the SDK where a phone's behaviour matters."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pika
import pytest
import requests

from dispatcher import messages as msgs
from dispatcher.delivery.tally import TALLY_FLUSH_S
from push_api.app import create_app
from sdk_stub import Phone
from tests.support import bearer, eventually


@pytest.fixture
def shop(http, stack, settings) -> dict:
    r = http.post(
        f"{stack.base}/v1/apps", json={"name": "sync"}, headers=bearer(settings.admin_token)
    )
    assert r.status_code == 201
    return r.json()


class Backend:
    """The app's server, sending through nginx."""

    def __init__(self, http, stack, shop):
        self.http, self.base, self.key = http, stack.base, shop["server_key"]

    def broadcast(self, **body) -> str:
        r = self.http.post(f"{self.base}/v1/broadcasts", json=body, headers=bearer(self.key))
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def notify(self, to: dict, **body) -> str:
        r = self.http.post(
            f"{self.base}/v1/notifications", json={"to": to, **body}, headers=bearer(self.key)
        )
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def stats(self, notification_id: str) -> dict:
        return self.http.get(
            f"{self.base}/v1/notifications/{notification_id}", headers=bearer(self.key)
        ).json()


@pytest.fixture
def backend(http, stack, shop) -> Backend:
    return Backend(http, stack, shop)


def phone(stack, shop, **kw) -> Phone:
    p = Phone(stack.base, shop["app_key"], **kw)
    p.open_session()
    return p


def raw_sync(http, base: str, token: str, **body) -> list[dict]:
    r = http.post(f"{base}/v1/device/sync", json=body, headers=bearer(token), timeout=40)
    assert r.status_code == 200, r.text
    return r.json()["messages"]


def test_acked_messages_leave_unacked_come_back_redelivered(http, stack, shop, backend):
    p = phone(stack, shop)
    ids = [backend.broadcast(title=f"m{i}") for i in range(3)]
    first = raw_sync(http, stack.base, p.token, max=2)
    assert [m["id"] for m in first] == ids[:2]
    assert [m["redelivered"] for m in first] == [False, False]
    second = raw_sync(http, stack.base, p.token, ack=[ids[0]], max=10)
    assert [m["id"] for m in second] == ids[1:]
    assert [m["redelivered"] for m in second] == [True, False]
    assert raw_sync(http, stack.base, p.token, ack=ids[1:], max=10) == []
    assert eventually(lambda: backend.stats(ids[0])["acked"] == 1)  # counted in the background


def test_redelivery_across_instances(http, stack, shop, backend):
    p = phone(stack, shop)
    first_instance, second_instance = stack.instances
    ids = [backend.notify({"device_id": p.device_id}, title=f"o{i}") for i in range(3)]
    got = raw_sync(http, first_instance, p.token, max=2)
    assert [m["id"] for m in got] == ids[:2]
    # the next sync lands on the other instance: the same messages, redelivered
    got = raw_sync(http, second_instance, p.token, max=10)
    assert [m["id"] for m in got] == ids
    assert [m["redelivered"] for m in got] == [True, True, False]
    # acks on the second instance; the first has nothing left to give
    assert raw_sync(http, second_instance, p.token, ack=ids[:2], max=10)[0]["id"] == ids[2]
    got = raw_sync(http, first_instance, p.token, ack=[ids[2]], max=10)
    assert got == []
    assert raw_sync(http, second_instance, p.token, max=10) == []


def test_another_devices_acks_change_nothing(http, stack, shop, backend):
    mine, other = phone(stack, shop), phone(stack, shop)
    sent = backend.notify({"device_id": mine.device_id})
    assert [m["id"] for m in raw_sync(http, stack.base, mine.token)] == [sent]
    assert raw_sync(http, stack.base, other.token, ack=[sent]) == []
    again = raw_sync(http, stack.base, mine.token)
    assert [m["id"] for m in again] == [sent] and again[0]["redelivered"] is True
    assert raw_sync(http, stack.base, mine.token, ack=[sent]) == []
    assert eventually(lambda: backend.stats(sent)["acked"] >= 1)
    time.sleep(2 * TALLY_FLUSH_S)  # whatever else was counted has been written by now
    assert backend.stats(sent)["acked"] == 1  # the other device's ack counted nothing


def test_order_updates_first_then_promos_in_send_order_after_long_offline(
    http, stack, shop, backend
):
    p = phone(stack, shop, user_id="olive")
    promos, orders = [], []
    for i in range(30):
        promos.append(backend.broadcast(title=f"promo {i}"))
        if i % 10 == 9:
            orders.append(backend.notify({"user_id": "olive"}, title=f"order {i}"))
    got = p.drain(max=7)
    assert [m["id"] for m in got] == orders + promos
    assert all(m["priority"] == "high" for m in got[:3])


def test_long_poll_wakes_on_a_targeted_send_and_on_a_broadcast(http, stack, shop, backend):
    """A sync whose wait runs out answers with what it read before waiting (nothing
    here), so the message in its answer, while the wait is far from over, is the
    wake-up. The test gives up on it long before the wait would end."""
    wait_s, give_up_s = 30, 10
    p = phone(stack, shop)
    for send in (
        lambda: backend.notify({"device_id": p.device_id}),
        lambda: backend.broadcast(title="flash sale"),
    ):
        result: dict = {}

        def waiting(out=result) -> None:
            with requests.Session() as own:
                out["messages"] = raw_sync(
                    own, stack.base, p.token, ack=p.state.to_ack, wait=wait_s
                )

        t = threading.Thread(target=waiting, daemon=True)
        t.start()
        time.sleep(0.5)  # let it wait
        sent = send()
        t.join(give_up_s)
        assert not t.is_alive(), f"the waiting sync was not woken (its wait is {wait_s} s)"
        assert [m["id"] for m in result["messages"]] == [sent]
        p.state.to_ack = [sent]


def test_long_poll_times_out_with_no_messages(http, stack, shop):
    p = phone(stack, shop)
    started = time.monotonic()
    assert raw_sync(http, stack.base, p.token, wait=1) == []
    assert time.monotonic() - started >= 1


def test_unregister_during_a_wait_ends_it(http, stack, shop):
    p = phone(stack, shop)
    result: dict = {}

    def waiting() -> None:
        result["response"] = http.post(
            f"{stack.base}/v1/device/sync", json={"wait": 25}, headers=bearer(p.token), timeout=40
        )

    t = threading.Thread(target=waiting)
    t.start()
    time.sleep(0.5)
    with requests.Session() as other:
        assert other.delete(f"{stack.base}/v1/device", headers=bearer(p.token)).status_code == 204
    t.join(30)
    assert not t.is_alive()
    assert result["response"].status_code == 404


def test_expired_messages_are_never_returned(http, stack, shop, backend):
    p = phone(stack, shop)
    backend.notify({"device_id": p.device_id}, ttl=1, title="gone soon")
    kept = backend.notify({"device_id": p.device_id}, title="stays")
    time.sleep(1.5)
    assert [m["id"] for m in p.drain()] == [kept]


def test_collapse_returns_only_the_newest_and_counts_the_rest(http, stack, shop, backend):
    p = phone(stack, shop)
    older = [backend.broadcast(title=f"score {i}", collapse_key="score") for i in range(3)]
    other = backend.broadcast(title="unrelated")
    got = p.drain()
    assert [m["id"] for m in got] == [older[-1], other]
    assert eventually(lambda: backend.stats(older[-1])["acked"] == 1)
    assert eventually(lambda: [backend.stats(i)["collapsed"] for i in older] == [1, 1, 0])


def test_acks_feed_the_acked_counter(http, stack, shop, backend):
    phones = [phone(stack, shop, user_id="ack-me") for _ in range(3)]
    sent = backend.notify({"user_id": "ack-me"})
    for p in phones[:2]:
        assert [m["id"] for m in p.drain()] == [sent]
    assert eventually(lambda: backend.stats(sent)["acked"] >= 2)
    time.sleep(2 * TALLY_FLUSH_S)  # whatever else was counted has been written by now
    stats = backend.stats(sent)
    assert (stats["targets"], stats["acked"]) == (3, 2)


def test_draining_a_10000_message_backlog_loses_and_repeats_nothing(
    http, stack, shop, settings, names
):
    p = phone(stack, shop, user_id="backlog")
    conn = pika.BlockingConnection(pika.URLParameters(settings.rabbitmq_url))
    ch = conn.channel()
    ch.confirm_delivery()
    sent: dict[str, list[str]] = {"high": [], "normal": []}
    for i in range(10_000):
        kind = "notification" if i % 100 == 0 else "broadcast"
        m = msgs.build(kind, msgs.Content(title=f"#{i}", data={"i": i}))
        ch.basic_publish(
            names.direct_exchange(m.priority),
            f"device.{p.device_id}",
            m.encode(),
            pika.BasicProperties(delivery_mode=2, message_id=m.id, headers=m.headers()),
            mandatory=True,
        )
        sent[m.priority].append(m.id)
    conn.close()
    got = p.drain(max=500)
    ids = [m["id"] for m in got]
    assert len(ids) == 10_000 and len(set(ids)) == 10_000
    assert ids == sent["high"] + sent["normal"]
    assert p.sync() == [] and p.device()["pending"] == 0


def test_the_sdk_dedupes_across_restarts(tmp_path, http, stack, shop, backend):
    state = tmp_path / "phone.json"
    p = Phone(stack.base, shop["app_key"], state_file=state)
    p.open_session()
    handled, crashed = [], ["dies before acking"]
    first, second = (backend.notify({"device_id": p.device_id}, title=t) for t in "ab")

    def handle(m: dict) -> None:
        if m["id"] == second and crashed:
            raise RuntimeError(crashed.pop())
        handled.append(m["id"])

    with pytest.raises(RuntimeError):
        p.sync(handle=handle)  # handles the first, dies on the second: nothing acked
    # a new process with the same state file: both come back redelivered; the app sees
    # only the one it had not handled, and both are acked
    again = Phone(stack.base, shop["app_key"], state_file=state)
    assert again.device_id == p.device_id
    assert [m["id"] for m in again.sync(handle=handle)] == [second]
    assert handled == [first, second]
    assert again.sync() == [] and again.device()["pending"] == 0


def test_get_device_counts_pending_including_held(http, stack, shop, backend):
    p = phone(stack, shop)
    for i in range(3):
        backend.broadcast(title=f"{i}")
    assert p.device()["pending"] == 3
    raw_sync(http, stack.base, p.token, max=2)
    assert p.device()["pending"] == 3  # two held (returned, not acked) + one queued


def test_a_deleted_and_registered_again_device_gets_none_of_its_old_messages(
    http, stack, shop, backend
):
    p = phone(stack, shop)
    backend.notify({"device_id": p.device_id}, title="before")
    assert len(raw_sync(http, stack.base, p.token)) == 1  # held by the instance now
    installation, device_id = p.state.installation_id, p.device_id
    p.unregister()
    again = Phone(stack.base, shop["app_key"])
    again.state.installation_id = installation
    again.open_session()
    assert again.device_id == device_id  # same installation, same device id
    assert raw_sync(http, stack.base, again.token) == []
    fresh = backend.notify({"device_id": again.device_id}, title="after")
    assert [m["id"] for m in again.drain()] == [fresh]


def test_a_dead_holder_does_not_delay_the_next_sync(http, stack, shop, backend, app, names):
    p = phone(stack, shop)
    sent = backend.notify({"device_id": p.device_id})
    # the device was last served by a process that has since died
    app.extensions["pushbox"].redis.set(names.holder_key(p.device_id), "ghost:1:dead")
    assert [m["id"] for m in raw_sync(http, stack.base, p.token)] == [sent]


def test_a_holder_that_does_not_let_go_makes_sync_answer_503(
    http, stack, shop, backend, app, names
):
    p = phone(stack, shop)
    backend.notify({"device_id": p.device_id})
    r = app.extensions["pushbox"].redis
    mute = r.pubsub()
    mute.subscribe(f"{names.signals_channel}:mute:1:alive")  # alive, never answers
    try:
        r.set(names.holder_key(p.device_id), "mute:1:alive")
        answer = http.post(
            f"{stack.base}/v1/device/sync", json={}, headers=bearer(p.token), timeout=30
        )
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        assert "previous API instance" in answer.json()["message"]
    finally:
        mute.close()
    # the holder key now names the instance that answered: the retry goes through
    assert len(raw_sync(http, stack.base, p.token)) == 1


def test_what_was_read_ahead_follows_the_device_to_another_instance(http, stack, shop, backend):
    """A sync that returns a full batch reads the next one ahead; if the device's next
    sync lands elsewhere, those messages come back from the queue, none lost."""
    p = phone(stack, shop)
    first_instance, second_instance = stack.instances
    ids = [backend.notify({"device_id": p.device_id}, title=f"r{i}") for i in range(12)]
    got = raw_sync(http, first_instance, p.token, max=4)
    assert [m["id"] for m in got] == ids[:4]
    held_by_first = http.get(f"{first_instance}/v1/device", headers=bearer(p.token)).json()
    assert held_by_first["pending"] == 12  # 4 returned and 4 read ahead are still pending
    got = raw_sync(http, second_instance, p.token, ack=ids[:4], max=10)
    # read ahead by the first instance and never given to the device: they come back
    # flagged redelivered by the broker, a false alarm (docs/delivery.md); none is lost
    assert [m["id"] for m in got] == ids[4:]
    assert raw_sync(http, second_instance, p.token, ack=ids[4:], max=10) == []
    assert raw_sync(http, first_instance, p.token, max=10) == []
    assert p.device()["pending"] == 0


def test_an_order_update_overtakes_promos_already_read_ahead(http, stack, shop, backend):
    p = phone(stack, shop)
    promos = [backend.broadcast(title=f"promo {i}") for i in range(8)]
    got = raw_sync(http, stack.base, p.token, max=4)  # reads promos 4-7 ahead
    assert [m["id"] for m in got] == promos[:4]
    order = backend.notify({"device_id": p.device_id}, title="shipped")
    got = raw_sync(http, stack.base, p.token, ack=promos[:4], max=4)
    assert [m["id"] for m in got] == [order, *promos[4:7]]
    got = raw_sync(http, stack.base, p.token, ack=[m["id"] for m in got], max=4)
    assert [m["id"] for m in got] == promos[7:]
    assert raw_sync(http, stack.base, p.token, ack=promos[7:], max=4) == []


def test_a_process_that_dies_while_reading_ahead_loses_nothing(client, settings):
    from tests.support import device_session, new_app

    dying, survivor = create_app(settings), create_app(settings)
    shop = new_app(client, settings)
    _, _, headers = device_session(client, shop)
    ids = [
        client.post(
            "/v1/broadcasts", json={"title": f"d{i}"}, headers=bearer(shop["server_key"])
        ).get_json()["id"]
        for i in range(12)
    ]
    d = dying.test_client().post("/v1/device/sync", json={"max": 4}, headers=headers)
    assert [m["id"] for m in d.get_json()["messages"]] == ids[:4]  # and 4 more read ahead
    dying.extensions["pushbox"].close()  # its connections drop, as when a process dies
    s = survivor.test_client().post("/v1/device/sync", json={"max": 20}, headers=headers)
    got = s.get_json()["messages"]
    assert [m["id"] for m in got] == ids
    assert all(m["redelivered"] for m in got[:4])
    survivor.extensions["pushbox"].close()


@pytest.fixture
def held_broker(client, settings, monkeypatch):
    """An app whose broker link goes through a proxy, a shop and a device session; and
    hold(): from then on the broker's replies are held back and a sync gives up waiting
    after 1 s (503), while its job goes on."""
    from dispatcher.delivery import mailbox as mailbox_module
    from tests.support import device_session, new_app
    from tests.tcp_proxy import TcpProxy

    def hold() -> None:
        monkeypatch.setattr(mailbox_module, "JOB_TIMEOUT_S", 1.0)
        proxy.hold_replies()

    proxy = TcpProxy("127.0.0.1", 5672)
    flaky = create_app(
        replace(settings, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
    )
    shop = new_app(client, settings)
    _, _, headers = device_session(client, shop)
    try:
        yield proxy, flaky, shop, headers, hold
    finally:
        proxy.release_replies()
        proxy.close()
        flaky.extensions["pushbox"].close()


def broadcasts(client, shop, n: int) -> list[str]:
    auth = bearer(shop["server_key"])
    return [
        client.post("/v1/broadcasts", json={"title": f"b{i}"}, headers=auth).get_json()["id"]
        for i in range(n)
    ]


def acked_counts(client, flaky, shop, ids) -> list[int]:
    flaky.extensions["pushbox"].tally.flush()
    return [
        client.get(f"/v1/notifications/{i}", headers=bearer(shop["server_key"])).get_json()["acked"]
        for i in ids
    ]


def test_acks_sent_before_reading_ahead_count_though_the_sync_answers_503(client, held_broker):
    """While reading ahead a sync acks first, then reads: if the read hangs (503), what
    it acked is gone from the queue and must still be counted, at once."""
    proxy, flaky, shop, headers, hold = held_broker
    fc = flaky.test_client()
    ids = broadcasts(client, shop, 30)
    # more than a few: a consumer reads them, and reads ahead
    first = fc.post("/v1/device/sync", json={"max": 10}, headers=headers)
    assert [m["id"] for m in first.get_json()["messages"]] == ids[:10]
    hold()  # the acks reach the broker; the read after them hangs
    r = fc.post("/v1/device/sync", json={"ack": ids[:10], "max": 10}, headers=headers)
    assert r.status_code == 503
    assert acked_counts(client, flaky, shop, ids[:10]) == [1] * 10
    proxy.release_replies()
    later = fc.post("/v1/device/sync", json={"max": 50}, headers=headers)
    assert [m["id"] for m in later.get_json()["messages"]] == ids[10:]  # acked: gone
    assert acked_counts(client, flaky, shop, ids[:10]) == [1] * 10  # and not twice


def test_a_sync_answered_503_that_finishes_later_still_counts_its_acks(client, held_broker):
    """A sync whose caller stopped waiting (503) goes on, and acks at its end: those
    acks count, though no answer carries them."""
    proxy, flaky, shop, headers, hold = held_broker
    fc = flaky.test_client()
    ids = broadcasts(client, shop, 3)
    first = fc.post("/v1/device/sync", json={"max": 10}, headers=headers)
    assert [m["id"] for m in first.get_json()["messages"]] == ids
    hold()  # the sync's reads hang; it acks only after them
    r = fc.post("/v1/device/sync", json={"ack": ids, "max": 10}, headers=headers)
    assert r.status_code == 503
    proxy.release_replies()  # it reads, then acks
    assert eventually(lambda: acked_counts(client, flaky, shop, ids) == [1] * 3)
    later = fc.post("/v1/device/sync", json={"max": 10}, headers=headers)
    assert later.get_json()["messages"] == []


def test_copies_of_one_id_are_returned_and_counted_once(
    client, settings, app, names, rabbit_channel
):
    """A send whose confirm was lost and that went again under its id leaves copies in
    the queue: the device gets the message once, and its ack counts once."""
    from tests.support import device_session, new_app

    shop = new_app(client, settings)
    device_id, _, headers = device_session(client, shop)
    auth = bearer(shop["server_key"])
    sent = client.post("/v1/notifications", json={"to": {"device_id": device_id}}, headers=auth)
    message_id = sent.get_json()["id"]
    queue = names.device_queue(device_id, "high")
    method, props, body = rabbit_channel.basic_get(queue)
    rabbit_channel.basic_reject(method.delivery_tag, requeue=True)
    rabbit_channel.basic_publish("", queue, body, props)  # the copy, under the same id
    got = client.post("/v1/device/sync", json={"max": 10}, headers=headers).get_json()
    assert [m["id"] for m in got["messages"]] == [message_id]
    client.post("/v1/device/sync", json={"ack": [message_id], "max": 10}, headers=headers)
    app.extensions["pushbox"].tally.flush()
    stats = client.get(f"/v1/notifications/{message_id}", headers=auth).get_json()
    assert stats["acked"] == 1
    assert rabbit_channel.queue_declare(queue, passive=True).method.message_count == 0
