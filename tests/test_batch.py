"""POST /v1/notifications/batch (DESIGN "Campaigns and bulk sends"): up to 500
notifications in one call, each standing alone, results in request order; against the
real MySQL and RabbitMQ."""

from __future__ import annotations

from dataclasses import replace

import pytest

from push_api.app import create_app
from tests.support import bearer, device_session, new_app, take_all
from tests.tcp_proxy import TcpProxy


def test_mixed_items_each_answer_alone_in_order(client, settings, names, rabbit_channel, app):
    shop = new_app(client, settings, "batch")
    auth = bearer(shop["server_key"])
    one, _, _ = device_session(client, shop, user_id="ann", topics=["deals"])
    two, _, _ = device_session(client, shop, user_id="bob")
    items = [
        {"to": {"device_id": one}, "title": "to one"},
        {"title": "no target"},
        {"to": {"user_id": "bob"}, "body": "to bob", "priority": "normal"},
        {"to": {"device_id": "987654321"}, "title": "nobody"},
        {"to": {"topic": "deals"}, "title": "x" * 4000, "body": "y" * 200},
        {"to": {"topic": "deals"}, "title": "deal"},
        "not an object",
        {"to": {"user_id": "nobody-at-all"}, "title": "nobody"},
    ]
    r = client.post("/v1/notifications/batch", json={"notifications": items}, headers=auth)
    assert r.status_code == 200, r.get_json()
    results = r.get_json()["results"]
    assert len(results) == len(items)
    assert results[0]["targets"] == 1 and results[0]["id"]
    assert results[1]["error"]["code"] == 422 and "to" in results[1]["error"]["message"]
    assert results[2]["targets"] == 1
    assert results[3]["error"]["error"] == "device_not_found"
    assert results[4]["error"]["error"] == "payload_too_large"
    assert results[5]["targets"] == 1
    assert results[6]["error"]["code"] == 422
    assert results[7]["error"]["code"] == 404
    sent = {results[i]["id"] for i in (0, 2, 5)}
    assert len(sent) == 3

    got_one = take_all(rabbit_channel, names, one)
    got_two = take_all(rabbit_channel, names, two)
    assert [m["id"] for m in got_one] == [results[0]["id"], results[5]["id"]]
    assert [(m["id"], m["priority"]) for m in got_two] == [(results[2]["id"], "normal")]
    for i in (0, 2, 5):
        stats = client.get(f"/v1/notifications/{results[i]['id']}", headers=auth).get_json()
        assert stats["targets"] == 1
    db = app.extensions["pushbox"].db
    rows = db.query("SELECT id FROM notifications WHERE app_id = %s", (shop["id"],))
    assert {row["id"] for row in rows} == sent  # the failed items left no row


@pytest.mark.parametrize("n", [0, 501])
def test_a_batch_of_0_or_501_is_refused_naming_the_field(client, settings, n):
    shop = new_app(client, settings, "batch-size")
    items = [{"to": {"user_id": "u"}, "title": "t"}] * n
    r = client.post(
        "/v1/notifications/batch", json={"notifications": items}, headers=bearer(shop["server_key"])
    )
    assert r.status_code == 422
    assert "notifications" in r.get_json()["errors"]["json"]


def test_500_items_go_out_together(client, settings, names, rabbit_channel):
    shop = new_app(client, settings, "batch-500")
    ids = [device_session(client, shop)[0] for _ in range(5)]
    items = [{"to": {"device_id": ids[i % 5]}, "title": f"n{i}"} for i in range(500)]
    r = client.post(
        "/v1/notifications/batch", json={"notifications": items}, headers=bearer(shop["server_key"])
    )
    assert r.status_code == 200
    results = r.get_json()["results"]
    assert all(res.get("targets") == 1 for res in results)
    got = [m["title"] for m in take_all(rabbit_channel, names, ids[0])]
    assert got == [f"n{i}" for i in range(0, 500, 5)]  # in request order


def test_broker_outage_every_item_answers_and_none_is_half_written(
    client, settings, names, rabbit_channel, app
):
    shop = new_app(client, settings, "batch-outage")
    device, _, _ = device_session(client, shop, user_id="cat")
    proxy = TcpProxy("127.0.0.1", 5672)
    cut_app = create_app(
        replace(settings, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
    )
    try:
        cut = cut_app.test_client()
        auth = bearer(shop["server_key"])
        warm = cut.post(
            "/v1/notifications/batch",
            json={"notifications": [{"to": {"device_id": device}, "title": "warm"}]},
            headers=auth,
        )
        assert warm.status_code == 200 and warm.get_json()["results"][0]["targets"] == 1
        take_all(rabbit_channel, names, device)
        proxy.cut()
        items = [{"to": {"user_id": "cat"}, "title": f"t{i}"} for i in range(20)]
        items.append({"to": {"user_id": "nobody"}, "title": "nobody"})
        r = cut.post("/v1/notifications/batch", json={"notifications": items}, headers=auth)
        assert r.status_code == 200, r.get_json()
        results = r.get_json()["results"]
        assert len(results) == 21
        for res in results[:20]:
            assert res["error"]["code"] == 503
            assert res["error"]["error"] in ("dependency_down", "delivery_unknown")
        assert results[20]["error"]["code"] == 404
        # nothing half-written: no message, and a row only for a send the broker may
        # have taken (none here: the link was cut before the call)
        assert take_all(rabbit_channel, names, device) == []
        db = app.extensions["pushbox"].db
        rows = db.query(
            "SELECT id, state FROM notifications WHERE app_id = %s AND id != %s",
            (shop["id"], warm.get_json()["results"][0]["id"]),
        )
        unknown = {res["error"].get("id") for res in results[:20]} - {None}
        assert {row["id"] for row in rows} == unknown
        assert all(row["state"] == "sending" for row in rows)

        proxy.restore()
        r = cut.post("/v1/notifications/batch", json={"notifications": items[:2]}, headers=auth)
        assert [res.get("targets") for res in r.get_json()["results"]] == [1, 1]
    finally:
        cut_app.extensions["pushbox"].close()
        proxy.close()


def test_a_batch_may_be_larger_than_one_request(client, settings):
    shop = new_app(client, settings, "batch-large")
    device, _, _ = device_session(client, shop)
    items = [{"to": {"device_id": device}, "title": "t", "body": "b" * 3000}] * 40
    r = client.post(
        "/v1/notifications/batch", json={"notifications": items}, headers=bearer(shop["server_key"])
    )
    assert r.status_code == 200 and len(r.get_json()["results"]) == 40  # ~120 KiB
    r = client.post(
        "/v1/broadcasts",
        json={"title": "t", "data": {"x": "y" * 70_000}},
        headers=bearer(shop["server_key"]),
    )
    assert r.status_code == 413  # one request keeps its own limit
