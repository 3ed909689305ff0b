"""Broadcasts and notifications: routing, priority lanes, backlog cap, ttl,
idempotency, mandatory publishing and the stats of a notification."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pymysql
import pytest

from dispatcher.grouped_sends import GroupedSends
from dispatcher.messages import Content, Target
from push_api.app import create_app
from pushbox_core import publisher as publisher_module
from pushbox_core.errors import BrokerUnavailable
from tests.support import bearer, device_session, eventually, new_app, register, take_all
from tests.tcp_proxy import TcpProxy


def send(client, shop, path, body, **headers):
    r = client.post(path, json=body, headers={**bearer(shop["server_key"]), **headers})
    return r.status_code, r.get_json()


def test_broadcast_reaches_every_device_of_the_app_and_no_other(
    client, settings, names, rabbit_channel
):
    shop, other = new_app(client, settings), new_app(client, settings)
    mine = [register(client, shop)[1]["device_id"] for _ in range(3)]
    theirs = register(client, other)[1]["device_id"]
    status, body = send(
        client, shop, "/v1/broadcasts", {"title": "Sale", "body": "50% off", "data": {"sku": "x"}}
    )
    assert status == 202 and body["targets"] == 3
    for device_id in mine:
        got = take_all(rabbit_channel, names, device_id)
        assert [m["id"] for m in got] == [body["id"]]
        m = got[0]
        assert (m["kind"], m["priority"], m["title"], m["data"]) == (
            "broadcast",
            "normal",
            "Sale",
            {"sku": "x"},
        )
        assert m["created_at"].endswith("Z") and m["expires_at"] > m["created_at"]
    assert take_all(rabbit_channel, names, theirs) == []


def test_broadcast_to_an_app_without_devices_targets_none(client, settings):
    shop = new_app(client, settings)
    assert send(client, shop, "/v1/broadcasts", {"title": "hi"})[1]["targets"] == 0


def test_notification_reaches_a_device_a_user_or_a_topic(client, settings, names, rabbit_channel):
    shop = new_app(client, settings)
    a = register(client, shop, user_id="ann", topics=["deals"])[1]["device_id"]
    b = register(client, shop, user_id="ann")[1]["device_id"]
    c = register(client, shop, user_id="cy", topics=["deals"])[1]["device_id"]
    cases = [({"device_id": a}, {a}), ({"user_id": "ann"}, {a, b}), ({"topic": "deals"}, {a, c})]
    for to, expected in cases:
        status, body = send(client, shop, "/v1/notifications", {"to": to, "title": "t"})
        assert status == 202 and body["targets"] == len(expected)
        for device_id in (a, b, c):
            got = take_all(rabbit_channel, names, device_id)
            assert [m["id"] for m in got] == ([body["id"]] if device_id in expected else [])
            if got:
                assert got[0]["priority"] == "high" and got[0]["kind"] == "notification"


def test_target_without_device_is_404_also_across_apps(client, settings):
    shop, other = new_app(client, settings), new_app(client, settings)
    theirs = register(client, other)[1]["device_id"]
    for to in (
        {"device_id": theirs},
        {"device_id": "424242424"},
        {"user_id": "nobody"},
        {"topic": "silence"},
    ):
        status, body = send(client, shop, "/v1/notifications", {"to": to})
        assert status == 404, to
        assert "no active device" in body["message"]


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"to": {"device_id": "1", "user_id": "u"}}, 422, "to"),
        ({"to": {}}, 422, "to"),
        ({"title": "x"}, 422, "to"),
        ({"to": {"user_id": "u"}, "ttl": 0}, 422, "ttl"),
        ({"to": {"user_id": "u"}, "ttl": 2_419_201}, 422, "ttl"),
        ({"to": {"user_id": "u"}, "priority": "urgent"}, 422, "priority"),
        ({"to": {"user_id": "u"}, "data": "not an object"}, 422, "data"),
        ({"to": {"user_id": "u"}, "body": "x" * 3000, "data": {"k": "y" * 2000}}, 413, "bytes"),
        ({"to": {"user_id": "u"}, "title": "\ud800"}, 422, "title"),
        ({"to": {"user_id": "u"}, "data": {"k": ["\udfff"]}}, 422, "data"),
        ({"to": {"user_id": "\ud800"}}, 404, "no active device"),
    ],
)
def test_bad_sends_are_refused_with_the_reason(client, settings, body, status, field):
    shop = new_app(client, settings)
    register(client, shop, user_id="u")
    got_status, got = send(client, shop, "/v1/notifications", body)
    assert got_status == status
    assert field in got["message"]


def test_sending_needs_a_server_key(client, settings):
    shop = new_app(client, settings)
    assert client.post("/v1/broadcasts", json={}).status_code == 401
    assert client.post("/v1/broadcasts", json={}, headers=bearer("sk_unknown")).status_code == 401
    r = client.post("/v1/broadcasts", json={}, headers=bearer(settings.admin_token))
    assert r.status_code == 403
    _, reg = register(client, shop)
    token = client.post("/v1/sessions", json=reg).get_json()["session_token"]
    assert client.post("/v1/broadcasts", json={}, headers=bearer(token)).status_code == 403


def test_same_idempotency_key_returns_the_first_answer_and_sends_once(
    client, settings, names, rabbit_channel
):
    shop, other = new_app(client, settings), new_app(client, settings)
    device_id = register(client, shop, user_id="ida")[1]["device_id"]
    register(client, other, user_id="ida")
    body = {"to": {"user_id": "ida"}, "title": "once"}
    first = send(client, shop, "/v1/notifications", body, **{"Idempotency-Key": "k1"})
    again = send(client, shop, "/v1/notifications", body, **{"Idempotency-Key": "k1"})
    assert first == again and first[0] == 202
    assert len(take_all(rabbit_channel, names, device_id)) == 1
    # the same key from another sender is another request
    theirs = send(client, other, "/v1/notifications", body, **{"Idempotency-Key": "k1"})
    assert theirs[0] == 202 and theirs[1]["id"] != first[1]["id"]
    # a different key sends again
    assert send(client, shop, "/v1/notifications", body, **{"Idempotency-Key": "k2"})[0] == 202
    assert len(take_all(rabbit_channel, names, device_id)) == 1


def test_a_device_whose_queue_vanished_gets_it_back_and_the_message(
    client, settings, names, rabbit_channel
):
    shop = new_app(client, settings)
    device_id = register(client, shop)[1]["device_id"]
    for q in names.device_queues(device_id):
        rabbit_channel.queue_delete(q)
    status, body = send(client, shop, "/v1/notifications", {"to": {"device_id": device_id}})
    assert status == 202
    assert [m["id"] for m in take_all(rabbit_channel, names, device_id)] == [body["id"]]


def test_order_updates_overtake_promos_in_their_own_lane(client, settings):
    """Promos first, then an order update: the device's own sync returns the order
    update ahead of them, and the promos after it in the order they were sent. The
    first sync has room for two of the four, so the order update must win the room
    (the high lane is read first) and come first in the answer."""
    shop = new_app(client, settings)
    _, _, headers = device_session(client, shop, user_id="olga")
    promos = [
        send(client, shop, "/v1/broadcasts", {"title": f"promo {i}"})[1]["id"] for i in range(3)
    ]
    order = send(client, shop, "/v1/notifications", {"to": {"user_id": "olga"}})[1]["id"]
    r = client.post("/v1/device/sync", json={"max": 2}, headers=headers)
    assert r.status_code == 200
    assert [m["id"] for m in r.get_json()["messages"]] == [order, promos[0]]
    r = client.post("/v1/device/sync", json={"ack": [order, promos[0]]}, headers=headers)
    assert [m["id"] for m in r.get_json()["messages"]] == promos[1:]


def test_full_backlog_drops_oldest_promos_keeps_order_updates_and_counts(
    settings, stack, names, rabbit_channel
):
    small = create_app(replace(settings, device_backlog_max=5))
    client = small.test_client()
    shop = new_app(client, settings)
    device_id = register(client, shop, user_id="pat")[1]["device_id"]
    promos = [send(client, shop, "/v1/broadcasts", {"title": f"p{i}"})[1]["id"] for i in range(5)]
    orders = [
        send(client, shop, "/v1/notifications", {"to": {"user_id": "pat"}})[1]["id"]
        for _ in range(2)
    ]
    late = [send(client, shop, "/v1/broadcasts", {"title": f"q{i}"})[1]["id"] for i in range(2)]
    kept = [m["id"] for m in take_all(rabbit_channel, names, device_id)]
    assert kept == orders + promos[2:] + late
    # the dispatcher counts the two dropped promos against their notifications
    for dropped in promos[:2]:
        stats = eventually(
            lambda d=dropped: client.get(
                f"/v1/notifications/{d}", headers=bearer(shop["server_key"])
            ).get_json()["dropped"]
        )
        assert stats == 1
    small.extensions["pushbox"].close()


def test_expired_message_is_never_delivered_and_is_counted(
    client, settings, stack, names, rabbit_channel
):
    shop = new_app(client, settings)
    device_id = register(client, shop)[1]["device_id"]
    _, short = send(client, shop, "/v1/notifications", {"to": {"device_id": device_id}, "ttl": 1})
    _, long = send(client, shop, "/v1/notifications", {"to": {"device_id": device_id}})
    stats_url = f"/v1/notifications/{short['id']}"

    def expired() -> int:
        return client.get(stats_url, headers=bearer(shop["server_key"])).get_json()["expired"]

    # nothing reads the queue while the ttl runs out; then the broker dead-letters it
    time.sleep(1.5)
    assert [m["id"] for m in take_all(rabbit_channel, names, device_id)] == [long["id"]]
    assert eventually(expired) == 1


def test_stats_of_a_notification(client, settings):
    shop, other = new_app(client, settings), new_app(client, settings)
    register(client, shop, user_id="sam")
    register(client, shop, user_id="sam")
    _, sent = send(client, shop, "/v1/notifications", {"to": {"user_id": "sam"}, "ttl": 60})
    r = client.get(f"/v1/notifications/{sent['id']}", headers=bearer(shop["server_key"]))
    assert r.status_code == 200
    body = r.get_json()
    assert body["id"] == sent["id"] and body["kind"] == "notification" and body["targets"] == 2
    assert (body["acked"], body["expired"], body["dropped"]) == (0, 0, 0)
    assert body["created_at"].endswith("Z") and body["expires_at"] > body["created_at"]
    r = client.get(f"/v1/notifications/{sent['id']}", headers=bearer(other["server_key"]))
    assert r.status_code == 404


def test_broker_outage_between_two_sends_is_503_then_recovers(
    client, settings, names, rabbit_channel
):
    proxy = TcpProxy("127.0.0.1", 5672)
    flaky = create_app(
        replace(settings, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
    )
    fc = flaky.test_client()
    shop = new_app(client, settings)
    device_id = register(client, shop)[1]["device_id"]
    to = {"to": {"device_id": device_id}}
    first = send(fc, shop, "/v1/notifications", to)
    assert first[0] == 202
    proxy.cut()
    status, body = send(fc, shop, "/v1/notifications", to)
    assert status == 503 and "message broker" in body["message"]
    proxy.restore()
    third = send(fc, shop, "/v1/notifications", to)
    assert third[0] == 202
    ids = [m["id"] for m in take_all(rabbit_channel, names, device_id)]
    assert ids == [first[1]["id"], third[1]["id"]]  # the refused send left nothing behind
    rows = flaky.extensions["pushbox"].db.query(
        "SELECT id FROM notifications WHERE app_id = %s", (shop["id"],)
    )
    assert sorted(r["id"] for r in rows) == sorted(ids)  # nor a row
    proxy.close()
    flaky.extensions["pushbox"].close()


def test_an_unconfirmed_send_keeps_its_row_and_goes_again_under_its_id(
    client, settings, names, rabbit_channel, monkeypatch
):
    """A send the broker took and never confirmed: 503 naming the notification, its
    row kept (the device may get it, and its ack must count), and a retry with the same
    Idempotency-Key sends it again under the same id, once."""
    monkeypatch.setattr(publisher_module, "CONFIRM_TIMEOUT_S", 0.5)
    proxy = TcpProxy("127.0.0.1", 5672)
    flaky = create_app(
        replace(settings, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
    )
    fc = flaky.test_client()
    db = flaky.extensions["pushbox"].db
    try:
        shop = new_app(client, settings)
        device_id = register(client, shop)[1]["device_id"]
        to = {"to": {"device_id": device_id}, "title": "maybe"}
        key = {"Idempotency-Key": "order-7-shipped"}
        assert send(fc, shop, "/v1/notifications", to)[0] == 202  # the link is up
        take_all(rabbit_channel, names, device_id)
        proxy.hold_replies()
        status, body = send(fc, shop, "/v1/notifications", to, **key)
        proxy.release_replies()
        assert status == 503 and body["id"] in body["message"], body
        unconfirmed = body["id"]
        row = db.query_one("SELECT state FROM notifications WHERE id = %s", (unconfirmed,))
        assert row is not None and row["state"] == "sending"
        first = [m["id"] for m in take_all(rabbit_channel, names, device_id)]
        assert first and set(first) == {unconfirmed}  # in the queue: a copy an attempt
        proxy.cut()  # a retry that fails outright keeps the row and the id for the next
        status, body = send(fc, shop, "/v1/notifications", to, **key)
        assert status == 503 and "id" not in body
        assert db.query_one("SELECT state FROM notifications WHERE id = %s", (unconfirmed,))
        proxy.restore()
        again = send(fc, shop, "/v1/notifications", to, **key)
        assert again == (202, {"id": unconfirmed, "targets": 1})
        assert [m["id"] for m in take_all(rabbit_channel, names, device_id)] == [unconfirmed]
        row = db.query_one("SELECT state FROM notifications WHERE id = %s", (unconfirmed,))
        assert row["state"] == "sent"
        assert send(fc, shop, "/v1/notifications", to, **key) == again  # answered, not sent
        assert take_all(rabbit_channel, names, device_id) == []
    finally:
        proxy.release_replies()
        proxy.close()
        flaky.extensions["pushbox"].close()


def test_rows_written_together_tell_a_taken_id_from_new_ones(client, settings, app):
    """Concurrent sends write their rows in one INSERT; an id already taken (an order
    event that came back) must not cost the others their rows."""
    from dispatcher.messages import Content, Target, build

    notifications = app.extensions["pushbox"].notifications
    shop = new_app(client, settings)
    target = Target("user", "kim")
    taken = build("notification", Content(title="paid"), message_id=f"order-{shop['id']}-1")
    assert notifications.record(shop["id"], taken, target, 1, state="sending") is None
    fresh = [build("notification", Content(title=f"n{i}")) for i in range(3)]
    rows = [
        (m.id, shop["id"], m.kind, "user", "kim", m.priority, None, m.ttl_s, m.created_at,
         m.expires_at, 1, "sent")
        for m in (fresh[0], taken, fresh[1], fresh[2])
    ]  # fmt: skip
    assert notifications._insert_rows(rows) == [None, "sending", None, None]
    for m in fresh:
        assert notifications.get(shop["id"], m.id) is not None
    # a row MySQL refuses fails its own caller only
    ok, bad = (build("notification", Content(title=t)) for t in ("ok", "bad"))
    rows = [
        (m.id, shop["id"], m.kind, "user", target, m.priority, None, m.ttl_s, m.created_at,
         m.expires_at, 1, "sent")
        for m, target in ((ok, "kim"), (bad, "k" * 300))  # target is VARCHAR(200)
    ]  # fmt: skip
    results = notifications._insert_rows(rows)
    assert results[0] is None and isinstance(results[1], pymysql.err.DataError)
    assert notifications.get(shop["id"], ok.id) is not None
    assert notifications.get(shop["id"], bad.id) is None


def test_concurrent_sends_each_get_their_own_answer_and_message(
    app, client, settings, names, rabbit_channel
):
    """Sends that run at once go out together (dispatcher.grouped_sends): each still
    answers alone, across apps, and one that fails (no such device, too large) fails
    only itself."""
    shop, other = new_app(client, settings), new_app(client, settings)
    mine = [register(client, shop)[1]["device_id"] for _ in range(4)]
    theirs = register(client, other, user_id="bo")[1]["device_id"]
    sends = [(shop, {"to": {"device_id": d}, "title": d}) for d in mine for _ in range(2)]
    sends += [(other, {"to": {"user_id": "bo"}, "title": theirs})]
    sends += [(shop, {"to": {"device_id": "999999999"}, "title": "nobody"})]
    too_large = {"body": "x" * 3000, "data": {"k": "y" * 2000}}
    sends += [(shop, {"to": {"device_id": mine[0]}, "title": mine[0], **too_large})]
    start = threading.Barrier(len(sends))

    def one(job):
        owner, body = job
        start.wait()
        return send(app.test_client(), owner, "/v1/notifications", body)

    with ThreadPoolExecutor(len(sends)) as pool:
        answers = list(pool.map(one, sends))
    assert [status for status, _ in answers] == [202] * 9 + [404, 413]
    assert len({body["id"] for _, body in answers[:9]}) == 9
    assert all(body["targets"] == 1 for _, body in answers[:9])
    for device_id in [*mine, theirs]:
        got = take_all(rabbit_channel, names, device_id)
        expected = [
            answer["id"]
            for (_, body), (status, answer) in zip(sends, answers, strict=True)
            if status == 202 and body["title"] == device_id
        ]
        assert len(expected) == (1 if device_id == theirs else 2)
        assert sorted(m["id"] for m in got) == sorted(expected)
        assert {m["title"] for m in got} == {device_id}


def test_a_send_that_waited_too_long_for_its_turn_is_not_sent(
    app, client, settings, names, rabbit_channel
):
    """A send queued behind slow groups past its limit answers 503 with nothing
    written, rather than going out after its caller stopped waiting."""
    shop = new_app(client, settings)
    device_id = register(client, shop)[1]["device_id"]
    d = app.extensions["pushbox"]
    sends = GroupedSends(d.dispatch, queued_max_s=0.0)  # every send has waited too long
    try:
        with pytest.raises(BrokerUnavailable) as refused:
            sends.notify(shop["id"], Target("device", device_id), Content(title="late"))
        assert "took over 0 s" in str(refused.value.detail or refused.value)
    finally:
        sends.close()
    assert take_all(rabbit_channel, names, device_id) == []
    rows = d.db.query_one(
        "SELECT COUNT(*) AS n FROM notifications WHERE app_id = %s", (shop["id"],)
    )
    assert rows["n"] == 0
