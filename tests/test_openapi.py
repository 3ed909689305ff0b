"""Every JSON answer is what /openapi.json says it is: real answers, held against the
served document's response schemas, with every documented field present and nothing
undocumented. Sync writes its answer without marshmallow (it splices the stored JSON),
so this is what keeps its bytes and its documented schema together."""

from __future__ import annotations

import copy

import pytest
from openapi_schema_validator import OAS30Validator

from tests.support import bearer, device_session, new_app


@pytest.fixture(scope="module")
def spec(app) -> dict:
    return app.test_client().get("/openapi.json").get_json()


def _resolve(node, spec: dict):
    """The schema with every $ref inlined, every property required and nothing else
    allowed: an answer must match the document exactly."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return _resolve(copy.deepcopy(spec["components"]["schemas"][name]), spec)
        out = {k: _resolve(v, spec) for k, v in node.items()}
        if out.get("type") == "object" and "properties" in out:
            out["required"] = sorted(out["properties"])
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_resolve(v, spec) for v in node]
    return node


def check(spec: dict, path: str, method: str, response) -> dict:
    """Validate one answer against the schema documented for its path and status."""
    documented = spec["paths"][path][method]["responses"][str(response.status_code)]
    schema = _resolve(documented["content"]["application/json"]["schema"], spec)
    body = response.get_json()
    OAS30Validator(schema).validate(body)
    return body


def test_sync_answers_match_their_documented_schema(client, settings, spec):
    shop = new_app(client, settings)
    check(spec, "/v1/apps", "post", _Answer(201, shop))
    device_id, _, headers = device_session(client, shop, user_id="ada")
    auth = bearer(shop["server_key"])
    sends = [
        client.post("/v1/broadcasts", json={"title": "promo"}, headers=auth),
        client.post(
            "/v1/notifications",
            json={
                "to": {"device_id": device_id},
                "body": "shipped",
                "data": {"order_id": "7", "items": [1, 2], "gift": None},
                "collapse_key": "order-7",
            },
            headers=auth,
        ),
    ]
    for r in sends:
        check(spec, "/v1/notifications" if r is sends[1] else "/v1/broadcasts", "post", r)
    first = client.post("/v1/device/sync", json={"max": 10}, headers=headers)
    body = check(spec, "/v1/device/sync", "post", first)
    assert [m["redelivered"] for m in body["messages"]] == [False, False]
    assert {m["title"] for m in body["messages"]} == {None, "promo"}  # nulls as documented
    again = client.post("/v1/device/sync", json={"max": 10}, headers=headers)
    body = check(spec, "/v1/device/sync", "post", again)
    assert [m["redelivered"] for m in body["messages"]] == [True, True]
    ids = [m["id"] for m in body["messages"]]
    empty = client.post("/v1/device/sync", json={"ack": ids}, headers=headers)
    assert check(spec, "/v1/device/sync", "post", empty) == {"messages": []}
    stats = client.get(f"/v1/notifications/{ids[0]}", headers=auth)
    check(spec, "/v1/notifications/{notification_id}", "get", stats)


def test_device_answers_match_their_documented_schema(client, settings, spec):
    shop = new_app(client, settings)
    r = client.post(
        "/v1/devices",
        json={"installation_id": "openapi-1", "platform": "ios", "topics": ["deals"]},
        headers={"X-App-Key": shop["app_key"]},
    )
    reg = check(spec, "/v1/devices", "post", r)
    session = client.post("/v1/sessions", json=reg)
    token = check(spec, "/v1/sessions", "post", session)["session_token"]
    headers = bearer(token)
    check(spec, "/v1/device", "get", client.get("/v1/device", headers=headers))
    patched = client.patch("/v1/device", json={"user_id": None, "locale": "de-AT"}, headers=headers)
    assert check(spec, "/v1/device", "patch", patched)["locale"] == "de-AT"


class _Answer:
    """An answer already read as JSON, for check()."""

    def __init__(self, status_code: int, body: dict):
        self.status_code, self._body = status_code, body

    def get_json(self) -> dict:
        return self._body
