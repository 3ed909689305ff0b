"""End to end, as a phone meets Pushbox: through nginx, to two API instances."""

from __future__ import annotations

import uuid

from tests.support import bearer


def create_app_over_http(http, stack, settings) -> dict:
    r = http.post(
        f"{stack.base}/v1/apps", json={"name": "e2e"}, headers=bearer(settings.admin_token)
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_registration_through_nginx_reaches_both_instances(http, stack, settings):
    shop = create_app_over_http(http, stack, settings)
    answered_by = set()
    for _ in range(20):
        r = http.post(
            f"{stack.base}/v1/devices",
            json={"installation_id": uuid.uuid4().hex, "platform": "ios"},
            headers={"X-App-Key": shop["app_key"]},
        )
        assert r.status_code == 201, r.text
        answered_by.add(r.headers["X-Pushbox-Instance"])
    assert len(answered_by) == 2


def test_session_opened_on_one_instance_works_on_the_other(http, stack, settings):
    shop = create_app_over_http(http, stack, settings)
    first, second = stack.instances
    reg = http.post(
        f"{first}/v1/devices",
        json={"installation_id": "p1", "platform": "web", "user_id": "u"},
        headers={"X-App-Key": shop["app_key"]},
    ).json()
    token = http.post(f"{first}/v1/sessions", json=reg).json()["session_token"]
    r = http.get(f"{second}/v1/device", headers=bearer(token))
    assert r.status_code == 200
    assert r.json()["device_id"] == reg["device_id"] and r.json()["user_id"] == "u"
    r = http.patch(f"{second}/v1/device", json={"topics": ["x"]}, headers=bearer(token))
    assert r.status_code == 200
    assert http.get(f"{first}/v1/device", headers=bearer(token)).json()["topics"] == ["x"]
    assert http.delete(f"{stack.base}/v1/device", headers=bearer(token)).status_code == 204
    assert http.get(f"{first}/v1/device", headers=bearer(token)).status_code == 401


def test_errors_through_nginx_are_json(http, stack):
    r = http.post(
        f"{stack.base}/v1/sessions", data="{oops", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["code"] == 400
    r = http.post(
        f"{stack.base}/v1/devices",
        data="x" * 2_000_000,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["code"] == 413
    assert http.get(f"{stack.base}/readyz").json()["status"] == "ok"
    assert http.get(f"{stack.base}/openapi.json").json()["info"]["title"] == "Pushbox"
    assert http.get(f"{stack.base}/docs").status_code == 200
