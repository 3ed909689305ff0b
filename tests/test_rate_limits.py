"""Rate limits: per device, per client address for registration; 429 with
Retry-After, and the SDK waits as told. Each test runs an app of its own with small
limits (the shared test settings raise them out of the way)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace

import pytest
import requests
from werkzeug.serving import make_server

from push_api.app import create_app
from sdk_stub import Phone
from tests.support import bearer, new_app


@pytest.fixture
def shop(client, settings) -> dict:
    return new_app(client, settings, "limits")


def test_device_rate_limit_answers_429_and_the_sdk_waits(settings, shop):
    limited = create_app(replace(settings, rate_device_per_s=1, rate_device_burst=2))
    server = make_server("127.0.0.1", 0, limited, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            time.sleep(seconds)

        p = Phone(base, shop["app_key"], sleep=sleep)
        p.open_session()
        codes = [
            requests.post(f"{base}/v1/device/sync", json={}, headers=bearer(p.token))
            for _ in range(3)
        ]
        assert [r.status_code for r in codes][:1] == [200]
        refused = [r for r in codes if r.status_code == 429]
        assert refused, [r.status_code for r in codes]
        assert int(refused[0].headers["Retry-After"]) >= 1
        assert "rate limit" in refused[0].json()["message"]
        p.sync()  # the bucket is still empty: the SDK waits as told, then succeeds
        assert slept and slept[0] >= 1
    finally:
        server.shutdown()
        limited.extensions["pushbox"].close()


def test_registration_rate_limit_per_address(settings, shop):
    limited = create_app(replace(settings, rate_registration_per_s=1, rate_registration_burst=3))
    c = limited.test_client()
    codes = [
        c.post(
            "/v1/devices",
            json={"installation_id": uuid.uuid4().hex, "platform": "ios"},
            headers={"X-App-Key": shop["app_key"]},
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
        ).status_code
        for _ in range(5)
    ]
    assert codes[:3] == [201, 201, 201] and 429 in codes[3:]
    other = c.post(
        "/v1/devices",
        json={"installation_id": "x", "platform": "ios"},
        headers={"X-App-Key": shop["app_key"]},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert other.status_code == 201
    limited.extensions["pushbox"].close()


def test_failed_session_attempts_do_not_spend_the_devices_budget(settings, shop):
    limited = create_app(replace(settings, rate_device_per_s=1, rate_device_burst=2))
    c = limited.test_client()
    reg = c.post(
        "/v1/devices",
        json={"installation_id": uuid.uuid4().hex, "platform": "ios"},
        headers={"X-App-Key": shop["app_key"]},
    ).get_json()
    for _ in range(5):
        wrong = {**reg, "device_secret": "ds_guess"}
        assert c.post("/v1/sessions", json=wrong).status_code == 401
    token = c.post("/v1/sessions", json=reg).get_json()["session_token"]
    assert c.post("/v1/device/sync", json={}, headers=bearer(token)).status_code == 200
    limited.extensions["pushbox"].close()
