"""Sessions and GET / PATCH / DELETE /v1/device."""

from __future__ import annotations

import pytest
from pika.exceptions import ChannelClosedByBroker

from pushbox_core.keys import hash_key
from tests.support import bearer, device_session, new_app, register, routes


def test_session_opens_with_the_secret_and_not_without(client, settings):
    shop = new_app(client, settings)
    _, reg = register(client, shop)
    r = client.post("/v1/sessions", json=reg)
    assert r.status_code == 201
    assert r.get_json()["expires_in"] == settings.session_ttl_s
    wrong = {**reg, "device_secret": "ds_wrong"}
    assert client.post("/v1/sessions", json=wrong).status_code == 401
    unknown = {**reg, "device_id": "99999999"}
    assert client.post("/v1/sessions", json=unknown).status_code == 401


def test_session_expiry_slides_with_each_use(client, settings, app):
    shop = new_app(client, settings)
    _, token, headers = device_session(client, shop)
    d = app.extensions["pushbox"]
    key = d.names.session_key(hash_key(token))
    d.redis.expire(key, 5)
    assert client.get("/v1/device", headers=headers).status_code == 200
    assert d.redis.ttl(key) > 5


def test_get_device_shows_fields_pending_and_presence(client, settings):
    shop = new_app(client, settings)
    device_id, _, headers = device_session(
        client, shop, user_id="carol", topics=["b", "a"], locale="fr", app_version="2.1"
    )
    body = client.get("/v1/device", headers=headers).get_json()
    assert body["device_id"] == device_id and body["app_id"] == shop["id"]
    assert body["platform"] == "android" and body["user_id"] == "carol"
    assert body["topics"] == ["a", "b"]
    assert body["pending"] == 0 and body["online"] is True
    assert body["last_seen_at"].endswith("Z")


def test_patch_moves_user_and_topic_bindings_at_once(client, settings, names, rabbit_channel):
    shop = new_app(client, settings)
    device_id, _, headers = device_session(client, shop, user_id="dave", topics=["old"])
    r = client.patch("/v1/device", json={"user_id": "erin", "topics": ["new"]}, headers=headers)
    assert r.status_code == 200
    assert r.get_json()["user_id"] == "erin" and r.get_json()["topics"] == ["new"]
    direct, app_id = names.direct_exchange("high"), shop["id"]
    assert routes(rabbit_channel, direct, f"user.{app_id}.erin")
    assert routes(rabbit_channel, direct, f"topic.{app_id}.new")
    assert not routes(rabbit_channel, direct, f"user.{app_id}.dave")
    assert not routes(rabbit_channel, direct, f"topic.{app_id}.old")

    r = client.patch("/v1/device", json={"user_id": None}, headers=headers)
    assert r.get_json()["user_id"] is None and r.get_json()["topics"] == ["new"]
    assert not routes(rabbit_channel, direct, f"user.{app_id}.erin")
    assert routes(rabbit_channel, direct, f"device.{device_id}")


def test_patch_rejects_fields_it_cannot_change(client, settings):
    shop = new_app(client, settings)
    _, _, headers = device_session(client, shop)
    r = client.patch("/v1/device", json={"platform": "ios"}, headers=headers)
    assert r.status_code == 422 and "platform" in r.get_json()["message"]


def test_delete_removes_queues_and_revokes_sessions(client, settings, names, rabbit_channel):
    shop = new_app(client, settings)
    device_id, _, headers = device_session(client, shop)
    second = client.post("/v1/sessions", json=register(client, shop, "again")[1])
    assert client.delete("/v1/device", headers=headers).status_code == 204
    assert client.get("/v1/device", headers=headers).status_code == 401
    for lane in ("high", "normal"):
        with pytest.raises(ChannelClosedByBroker):
            rabbit_channel.connection.channel().queue_declare(
                names.device_queue(device_id, lane), passive=True
            )
    # another device's session is untouched
    other = bearer(second.get_json()["session_token"])
    assert client.get("/v1/device", headers=other).status_code == 200


def test_a_deleted_installation_registers_as_new(client, settings):
    shop = new_app(client, settings)
    _, reg = register(client, shop, "comeback")
    headers = bearer(client.post("/v1/sessions", json=reg).get_json()["session_token"])
    client.delete("/v1/device", headers=headers)
    status, again = register(client, shop, "comeback")
    assert status == 201
    assert client.post("/v1/sessions", json=again).status_code == 201


def test_device_endpoints_need_a_session_token(client, settings):
    shop = new_app(client, settings)
    assert client.get("/v1/device").status_code == 401
    assert client.get("/v1/device", headers=bearer("st_forged")).status_code == 401
    r = client.get("/v1/device", headers=bearer(shop["server_key"]))
    assert r.status_code == 403
    assert client.get("/v1/device", headers=bearer(settings.admin_token)).status_code == 403


@pytest.mark.parametrize(
    "ack, bad",
    [(["fine", ""], "1"), (["fine", 7], "1"), (["x" * 65], "0"), ("not-a-list", None)],
)
def test_a_sync_with_a_bad_ack_id_is_422_naming_it(client, settings, ack, bad):
    shop = new_app(client, settings)
    _, _, headers = device_session(client, shop)
    r = client.post("/v1/device/sync", json={"ack": ack}, headers=headers)
    assert r.status_code == 422
    errors = r.get_json()["errors"]["json"]["ack"]
    if bad is not None:
        assert list(errors) == [bad]  # by its place in the list
    assert (
        client.post("/v1/device/sync", json={"ack": ["fine"]}, headers=headers).status_code == 200
    )
