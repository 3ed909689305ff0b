"""POST /v1/apps and POST /v1/devices: apps, devices and their durable mailboxes."""

from __future__ import annotations

import pika
import pytest

from pushbox_core.keys import hash_key
from tests.support import bearer, new_app, register, routes


def test_admin_creates_an_app_with_keys_stored_hashed(client, settings, app):
    r = client.post("/v1/apps", json={"name": "Shop"}, headers=bearer(settings.admin_token))
    assert r.status_code == 201
    body = r.get_json()
    assert set(body) == {"id", "name", "app_key", "server_key"}
    row = app.extensions["pushbox"].db.query_one(
        "SELECT app_key_hash, server_key_hash FROM apps WHERE id = %s", (body["id"],)
    )
    assert row == {
        "app_key_hash": hash_key(body["app_key"]),
        "server_key_hash": hash_key(body["server_key"]),
    }


def test_creating_an_app_needs_the_admin_token(client, settings):
    assert client.post("/v1/apps", json={"name": "x"}).status_code == 401
    r = client.post("/v1/apps", json={"name": "x"}, headers=bearer("adm_wrong"))
    assert r.status_code == 401
    shop = new_app(client, settings)
    r = client.post("/v1/apps", json={"name": "x"}, headers=bearer(shop["server_key"]))
    assert r.status_code == 403
    assert "admin token" in r.get_json()["message"]


def test_registration_declares_two_capped_lanes_bound_to_the_exchanges(
    client, settings, names, rabbit_channel
):
    shop = new_app(client, settings)
    status, reg = register(client, shop, user_id="alice", topics=["deals", "news"])
    assert status == 201
    assert reg["device_secret"] and reg["device_id"]
    device_id = reg["device_id"]
    ch = rabbit_channel
    for lane in ("high", "normal"):
        queue = names.device_queue(device_id, lane)
        assert ch.queue_declare(queue, passive=True).method.message_count == 0
        # the same declare with the expected arguments is accepted: they match
        ch.queue_declare(
            queue,
            durable=True,
            arguments={
                "x-max-length": settings.device_backlog_max,
                "x-overflow": "drop-head",
                "x-dead-letter-exchange": names.dead_letter_exchange,
                "x-expires": settings.device_queue_expires_s * 1000,
                "x-queue-type": "classic",
                "x-queue-version": 1,
            },
        )
    direct = names.direct_exchange("normal")
    for key in (
        f"device.{device_id}",
        f"user.{shop['id']}.alice",
        f"topic.{shop['id']}.deals",
        f"topic.{shop['id']}.news",
    ):
        assert routes(ch, direct, key), key
        assert routes(ch, names.direct_exchange("high"), key), key
    assert not routes(ch, direct, f"topic.{shop['id']}.sports")
    assert routes(ch, names.broadcast_exchange(shop["id"], "normal"), "")
    depth = ch.queue_declare(names.device_queue(device_id, "normal"), passive=True)
    assert depth.method.message_count == 5


def test_registering_the_same_installation_again_keeps_device_and_queue(
    client, settings, names, rabbit_channel
):
    shop = new_app(client, settings)
    status, first = register(client, shop, "phone-1", user_id="bob", locale="de-DE")
    assert status == 201
    queue = names.device_queue(first["device_id"], "normal")
    rabbit_channel.basic_publish("", queue, b"{}", pika.BasicProperties(delivery_mode=2))

    status, again = register(client, shop, "phone-1")
    assert status == 200
    assert again["device_id"] == first["device_id"]
    assert again["device_secret"] != first["device_secret"]
    assert rabbit_channel.queue_declare(queue, passive=True).method.message_count == 1
    # the old secret no longer opens a session; the new one does
    assert client.post("/v1/sessions", json=first).status_code == 401
    r = client.post("/v1/sessions", json=again)
    assert r.status_code == 201
    device = client.get("/v1/device", headers=bearer(r.get_json()["session_token"])).get_json()
    assert device["user_id"] == "bob" and device["locale"] == "de-DE"  # fields left out kept
    assert device["pending"] == 1


def test_same_installation_in_two_apps_is_two_devices(client, settings):
    a, b = new_app(client, settings), new_app(client, settings)
    _, in_a = register(client, a, "shared-install")
    status, in_b = register(client, b, "shared-install")
    assert status == 201 and in_a["device_id"] != in_b["device_id"]


def test_registration_needs_a_known_app_key(client):
    r = client.post("/v1/devices", json={"installation_id": "x", "platform": "ios"})
    assert r.status_code == 401
    r = client.post(
        "/v1/devices",
        json={"installation_id": "x", "platform": "ios"},
        headers={"X-App-Key": "ak_nope"},
    )
    assert r.status_code == 401
    assert "X-App-Key" in r.get_json()["message"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"platform": "ios"}, "installation_id"),
        ({"installation_id": "x", "platform": "symbian"}, "platform"),
        ({"installation_id": "x", "platform": "ios", "topics": ["no spaces"]}, "topics"),
        ({"installation_id": "x", "platform": "ios", "topics": "deals"}, "topics"),
        ({"installation_id": "x", "platform": "ios", "colour": "red"}, "colour"),
        ({"installation_id": "x" * 201, "platform": "ios"}, "installation_id"),
    ],
)
def test_invalid_registration_is_422_naming_the_field(client, settings, body, field):
    shop = new_app(client, settings)
    r = client.post("/v1/devices", json=body, headers={"X-App-Key": shop["app_key"]})
    assert r.status_code == 422
    assert field in r.get_json()["message"]
    assert field in r.get_json()["errors"]["json"]
