"""Error bodies carry a stable `error` name beside flask-smorest's fields."""

from __future__ import annotations

from tests.support import bearer, device_session, new_app


def test_each_error_names_itself(client, settings):
    shop = new_app(client, settings)
    _, _, headers = device_session(client, shop)
    cases = [
        (client.get("/v1/device"), 401, "unauthorized"),
        (client.get("/v1/device", headers=bearer(shop["server_key"])), 403, "forbidden"),
        (
            client.get("/v1/notifications/nope", headers=bearer(shop["server_key"])),
            404,
            "notification_not_found",
        ),
        (
            client.post(
                "/v1/notifications",
                json={"to": {"device_id": "999999"}},
                headers=bearer(shop["server_key"]),
            ),
            404,
            "device_not_found",
        ),
        (
            client.post("/v1/device/sync", json={"max": 501}, headers=headers),
            422,
            "invalid_request",
        ),
        (
            client.post(
                "/v1/device/sync",
                data="{not json",
                headers={**headers, "Content-Type": "application/json"},
            ),
            400,
            "malformed_json",
        ),
        (client.get("/v1/no-such-route"), 404, "not_found"),
    ]
    for r, status, name in cases:
        body = r.get_json()
        assert (r.status_code, body["code"], body["error"]) == (status, status, name), body
        assert body["message"] and body["status"]
