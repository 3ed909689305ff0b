"""GET /metrics (DESIGN "Operating it"): who may scrape, and that one scrape through
nginx counts what every API instance and worker did."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pika
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import settings_env, stack_of_its_own
from tests.support import (
    OverHttp,
    bearer,
    device_session,
    eventually,
    grew,
    new_app,
    scrape,
    value,
)

SYNC = "/v1/device/sync"
FAR = {"X-Forwarded-For": "203.0.113.9"}  # what nginx says of a client elsewhere


# ---- who may scrape (in-process)
def test_loopback_scrapes_without_a_token(client):
    r = client.get("/metrics")
    assert r.status_code == 200
    assert "pushbox_http_requests_total" in r.get_data(as_text=True)


def test_anyone_else_needs_the_admin_token(client, settings):
    assert client.get("/metrics", headers=FAR).status_code == 401
    app = new_app(client, settings)
    wrong = client.get("/metrics", headers={**FAR, **bearer(app["server_key"])})
    assert wrong.status_code == 403
    right = client.get("/metrics", headers={**FAR, **bearer(settings.admin_token)})
    assert right.status_code == 200


def test_every_metric_of_the_contract_is_exported(client):
    text = client.get("/metrics").get_data(as_text=True)
    names = {family.name for family in text_string_to_metric_families(text)}
    for name in (
        "pushbox_http_requests",
        "pushbox_http_request_seconds",
        "pushbox_send_seconds",
        "pushbox_sync_seconds",
        "pushbox_waiting_devices",
        "pushbox_streaming_devices",
        "pushbox_wakes",
        "pushbox_campaigns",
        "pushbox_dependency_errors",
    ):
        assert name in names, name


# ---- one scrape through nginx, every process of the stack
def one_phone_on_each_instance(stack, settings, http) -> list[dict]:
    """Session headers of two phones that nginx sends to different instances (it pins
    a device to one by its session token)."""
    app = new_app(OverHttp(stack.base, http), settings)
    on: dict[str, dict] = {}
    for _ in range(30):  # each lands on either with even odds: 30 fail to spread 1 in 2^29
        _, _, headers = device_session(OverHttp(stack.base, http), app)
        r = http.get(f"{stack.base}/v1/device", headers=headers, timeout=10)
        on.setdefault(r.headers["X-Pushbox-Instance"], headers)
        if len(on) == 2:
            return list(on.values())
    raise AssertionError(f"nginx sent 30 devices to one instance: {sorted(on)}")


def test_a_scrape_through_nginx_counts_both_instances(stack, settings, http):
    first, second = one_phone_on_each_instance(stack, settings, http)
    before = scrape(stack.base)
    # through nginx: two syncs answered by one instance, one by the other, and a 422
    for headers, body in ((first, {}), (first, {}), (second, {}), (second, {"max": 900})):
        r = http.post(f"{stack.base}{SYNC}", json=body, headers=headers, timeout=10)
        assert r.status_code == (422 if body else 200)
    after = scrape(stack.base)
    labels = {"route": SYNC, "method": "POST"}
    counted = "pushbox_http_requests_total"
    assert grew(before, after, counted, **labels, status="200") == 3
    assert grew(before, after, counted, **labels, status="422") == 1
    assert grew(before, after, "pushbox_http_request_seconds_count", **labels) == 4
    assert grew(before, after, "pushbox_sync_seconds_count") == 3
    # either instance answers for all
    assert value(scrape(stack.instances[1]), counted, **labels, status="200") == value(
        after, counted, **labels, status="200"
    )


def test_waiting_devices_are_a_live_gauge(stack, settings, http):
    app = new_app(OverHttp(stack.base, http), settings)
    device_id, _, headers = device_session(OverHttp(stack.base, http), app)
    answer: list[requests.Response] = []
    waiting = threading.Thread(
        target=lambda: answer.append(
            requests.post(f"{stack.base}{SYNC}", json={"wait": 25}, headers=headers, timeout=40)
        )
    )
    waiting.start()
    assert eventually(lambda: value(scrape(stack.base), "pushbox_waiting_devices") >= 1)
    http.post(
        f"{stack.base}/v1/notifications",
        json={"to": {"device_id": device_id}, "title": "wake up"},
        headers=bearer(app["server_key"]),
    )
    waiting.join(40)
    assert len(answer[0].json()["messages"]) == 1
    assert eventually(lambda: value(scrape(stack.base), "pushbox_waiting_devices") == 0)


def test_the_dispatcher_worker_counts_in_the_same_scrape(stack, settings, http):
    app = new_app(OverHttp(stack.base, http), settings)
    device_session(OverHttp(stack.base, http), app, user_id="olga")
    count = "pushbox_send_seconds_count"
    before = value(scrape(stack.base), count, kind="notification")
    conn = pika.BlockingConnection(pika.URLParameters(settings.rabbitmq_url))
    event = {"app_id": app["id"], "user_id": "olga", "order_id": "m-1", "status": "shipped"}
    conn.channel().basic_publish(settings.orders_exchange, "order.shipped", json.dumps(event))
    conn.close()
    assert eventually(lambda: value(scrape(stack.base), count, kind="notification") == before + 1)


def test_the_metrics_directory_starts_empty(settings):
    env = settings_env(settings)
    with stack_of_its_own(env) as st:
        st.with_dispatcher = False
        st.api_ports = st.api_ports[:1]
        st.metrics_dir.mkdir(parents=True)
        stale = st.metrics_dir / "counter_999999999.db"
        stale.write_bytes(b"an earlier run")
        st.up()
        assert not stale.exists()
        written = {p.name for p in Path(st.metrics_dir).iterdir()}
        assert written, "the API instance writes its metrics there"
        scraped = scrape(f"http://127.0.0.1:{st.nginx_port}")
        assert (
            value(
                scraped, "pushbox_http_requests_total", route="/healthz", method="GET", status="200"
            )
            >= 1
        )
