"""Bad input and dependencies that fail: clear errors, 503 when a server is down, and
nothing half-written. A dependency is failed by cutting a TCP proxy the test owns."""

from __future__ import annotations

from dataclasses import replace

import pytest

from push_api.app import create_app
from tests.support import bearer, device_session, new_app, register
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def broker_proxy(settings):
    proxy = TcpProxy("127.0.0.1", 5672)
    yield proxy
    proxy.close()


def proxied_app(settings, **changes):
    flask_app = create_app(replace(settings, **changes))
    return flask_app


def test_malformed_json_is_400(client, settings):
    r = client.post(
        "/v1/apps",
        data="{not json",
        content_type="application/json",
        headers=bearer(settings.admin_token),
    )
    assert r.status_code == 400
    assert r.get_json()["message"] == "malformed JSON body"


def test_too_large_body_is_413(client, settings):
    shop = new_app(client, settings)
    big = {"installation_id": "x", "platform": "ios", "locale": "a" * 70_000}
    r = client.post("/v1/devices", json=big, headers={"X-App-Key": shop["app_key"]})
    assert r.status_code == 413
    assert "too large" in r.get_json()["message"]


def test_unknown_path_is_json_404(client):
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.get_json()["code"] == 404


def test_broker_down_during_registration_is_503_and_registers_nothing(
    client, settings, broker_proxy, app
):
    """MySQL is up and the broker link is cut, so the registration gets as far as its
    row (written first, as pending) and no further: 503 with Retry-After, and the row
    stays invisible (no target for a send, not counted by a broadcast). Sending the
    registration again activates that same row."""
    shop = new_app(client, settings)
    cut_app = proxied_app(
        settings, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}/%2F"
    )
    cut = cut_app.test_client()
    # warm the connection pool, then cut the link under it
    assert register(cut, shop, "warm-up")[0] == 201
    broker_proxy.cut()

    r = cut.post(
        "/v1/devices",
        json={"installation_id": "during-outage", "platform": "android", "user_id": "u1"},
        headers={"X-App-Key": shop["app_key"]},
    )
    assert r.status_code == 503
    assert int(r.headers.get("Retry-After", 0)) >= 1
    body = r.get_json()
    assert "message broker" in body["message"]
    assert "Traceback" not in str(body) and "device_secret" not in body
    db = app.extensions["pushbox"].db
    row = db.query_one(
        "SELECT id, status FROM devices WHERE app_id = %s AND installation_id = %s",
        (shop["id"], "during-outage"),
    )
    assert row is not None and row["status"] == "pending"
    device_id = str(row["id"])
    auth = bearer(shop["server_key"])
    for to in ({"device_id": device_id}, {"user_id": "u1"}):
        r = client.post("/v1/notifications", json={"to": to}, headers=auth)
        assert r.status_code == 404, to
    r = client.post("/v1/broadcasts", json={"title": "sale"}, headers=auth)
    assert r.get_json()["targets"] == 1  # the warm-up device only

    broker_proxy.restore()
    status, body = register(cut, shop, "during-outage", user_id="u1")
    assert status == 201  # the retry finishes the registration, same row
    assert body["device_id"] == device_id
    assert client.post("/v1/sessions", json=body).status_code == 201
    r = client.post("/v1/notifications", json={"to": {"user_id": "u1"}}, headers=auth)
    assert r.status_code == 202 and r.get_json()["targets"] == 1
    cut_app.extensions["pushbox"].close()


def test_readyz_names_the_dependency_that_is_down(client, settings, broker_proxy):
    cut_app = proxied_app(
        settings, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}/%2F"
    )
    cut = cut_app.test_client()
    assert cut.get("/readyz").status_code == 200
    broker_proxy.cut()
    r = cut.get("/readyz")
    assert r.status_code == 503
    assert r.headers["Retry-After"]
    assert "rabbitmq" in r.get_json()["message"]
    assert r.get_json()["checks"] == {"mysql": "ok", "rabbitmq": "down", "redis": "ok"}
    assert cut.get("/healthz").status_code == 200
    cut_app.extensions["pushbox"].close()


def test_database_down_is_503(client, settings):
    proxy = TcpProxy(settings.mysql_host, settings.mysql_port)
    shop = new_app(client, settings)
    cut_app = proxied_app(settings, mysql_port=proxy.port)
    cut = cut_app.test_client()
    proxy.cut()
    status, body = register(cut, shop, "db-outage")
    assert status == 503 and "database" in body["message"]
    proxy.close()
    cut_app.extensions["pushbox"].close()


def test_redis_down_is_503_and_loses_no_device(client, settings):
    proxy = TcpProxy("127.0.0.1", 6379)
    shop = new_app(client, settings)
    _, reg = register(client, shop)
    cut_app = proxied_app(settings, redis_url=f"redis://127.0.0.1:{proxy.port}/0")
    cut = cut_app.test_client()
    proxy.cut()
    r = cut.post("/v1/sessions", json=reg)
    assert r.status_code == 503 and "session store" in r.get_json()["message"]
    proxy.restore()
    assert cut.post("/v1/sessions", json=reg).status_code == 201
    proxy.close()
    cut_app.extensions["pushbox"].close()


def test_broker_down_during_delete_keeps_the_device(client, settings, broker_proxy):
    shop = new_app(client, settings)
    cut_app = proxied_app(
        settings, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}/%2F"
    )
    cut = cut_app.test_client()
    _, _, headers = device_session(cut, shop)
    broker_proxy.cut()
    assert cut.delete("/v1/device", headers=headers).status_code == 503
    assert client.get("/v1/device", headers=headers).status_code == 200  # still there
    broker_proxy.restore()
    assert cut.delete("/v1/device", headers=headers).status_code == 204
    cut_app.extensions["pushbox"].close()
