"""Small helpers the tests share: acting as an operator, an app backend and a phone."""

from __future__ import annotations

import uuid

import pika
from pika.exceptions import UnroutableError


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_app(client, settings, name: str = "shop") -> dict:
    r = client.post("/v1/apps", json={"name": name}, headers=bearer(settings.admin_token))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def register(client, app: dict, installation_id: str | None = None, **fields) -> tuple[int, dict]:
    body = {"installation_id": installation_id or uuid.uuid4().hex, "platform": "android"}
    body.update(fields)
    r = client.post("/v1/devices", json=body, headers={"X-App-Key": app["app_key"]})
    return r.status_code, r.get_json()


def device_session(client, app: dict, **fields) -> tuple[str, str, dict]:
    """Register a device and open a session: (device_id, session_token, headers)."""
    status, reg = register(client, app, **fields)
    assert status == 201, reg
    r = client.post("/v1/sessions", json=reg)
    assert r.status_code == 201, r.get_json()
    token = r.get_json()["session_token"]
    return reg["device_id"], token, bearer(token)


def routes(channel, exchange: str, key: str) -> bool:
    """Does a mandatory publish to (exchange, key) reach at least one queue?"""
    channel.confirm_delivery()
    try:
        channel.basic_publish(
            exchange, key, b"{}", pika.BasicProperties(delivery_mode=2), mandatory=True
        )
        return True
    except UnroutableError:
        return False


def take_all(channel, names, device_id: str) -> list[dict]:
    """Everything in a device's lanes, high lane first, taken off the queues."""
    import json

    out = []
    for lane in ("high", "normal"):
        while True:
            method, props, body = channel.basic_get(names.device_queue(device_id, lane))
            if method is None:
                break
            channel.basic_ack(method.delivery_tag)
            out.append(json.loads(body))
    return out


def eventually(check, seconds: float = 20.0, every: float = 0.1):
    """Poll until check() is truthy (work done by another process); its last value."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


class OverHttp:
    """The helpers above over real HTTP (through nginx): a Flask-test-client-like
    `post` whose answers have `status_code` and `get_json()`."""

    def __init__(self, base: str, http):
        self.base, self.http = base, http

    def post(self, path: str, **kwargs):
        return _Answer(self.http.post(self.base + path, timeout=10, **kwargs))


class _Answer:
    def __init__(self, r):
        self.status_code, self._r = r.status_code, r

    def get_json(self):
        return self._r.json()


# ---- reading GET /metrics
def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus text as {(sample name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def grew(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def scrape(base: str) -> dict:
    """GET /metrics (from loopback: no token needed), as samples()."""
    import requests

    r = requests.get(f"{base}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return samples(r.text)
