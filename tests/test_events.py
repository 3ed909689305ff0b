"""Events for other services (DESIGN "Operating it"): a queue bound to `#` on
`<ns>.events` sees each change once, with the documented fields. The changes go
through the in-process API; token.invalid is in test_wakes.py (the wake worker)."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from pushbox_core.events import ALL
from sdk_stub.events import EventListener
from tests.support import bearer, device_session, eventually, new_app

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
def listener(settings):
    heard = EventListener(settings.rabbitmq_url, settings.namespace, ["#"])
    yield heard
    heard.close()


class Heard:
    """What the listener heard of one app (other tests' events are left out)."""

    def __init__(self, listener: EventListener, app_id: str):
        self.listener, self.app_id, self.events = listener, app_id, []

    def until(self, check) -> list[dict]:
        def more():
            self.events += [e for e in self.listener.take() if e.get("app_id") == self.app_id]
            return check(self.events)

        assert eventually(more), self.events
        return self.events

    def named(self, name: str) -> list[dict]:
        return [e for e in self.events if e["event"] == name]


def test_each_change_is_heard_once_with_its_ids(client, settings, listener):
    app = new_app(client, settings, "events")
    heard = Heard(listener, app["id"])
    device_id, _, headers = device_session(client, app, user_id="dora")
    r = client.post(
        "/v1/notifications",
        json={"to": {"device_id": device_id}, "title": "hi"},
        headers=bearer(app["server_key"]),
    )
    notification_id = r.get_json()["id"]
    got = client.post("/v1/device/sync", json={}, headers=headers).get_json()["messages"]
    client.post("/v1/device/sync", json={"ack": [m["id"] for m in got]}, headers=headers)
    heard.until(lambda events: any(e["event"] == "notification.acked" for e in events))
    assert client.delete("/v1/device", headers=headers).status_code == 204
    heard.until(lambda events: any(e["event"] == "device.deleted" for e in events))

    for event in heard.events:
        assert event["event"] in ALL
        assert RFC3339.match(event["at"]) and datetime.fromisoformat(event["at"])
    (registered,) = heard.named("device.registered")
    assert registered["device_id"] == device_id and registered["again"] is False
    (sent,) = heard.named("notification.sent")
    assert sent == {
        **sent,
        "notification_id": notification_id,
        "kind": "notification",
        "targets": 1,
        "device_id": device_id,
    }
    (acked,) = heard.named("notification.acked")
    assert acked["acks"] == [{"notification_id": notification_id, "device_id": device_id}]
    (deleted,) = heard.named("device.deleted")
    assert deleted["device_id"] == device_id
    assert [e["event"] for e in heard.events] == [
        "device.registered",
        "notification.sent",
        "notification.acked",
        "device.deleted",
    ]


def test_a_broadcast_is_one_sent_event_and_its_acks_come_in_batches(client, settings, listener):
    app = new_app(client, settings, "events-batch")
    heard = Heard(listener, app["id"])
    phones = [device_session(client, app) for _ in range(3)]
    ids = []
    for _ in range(5):
        r = client.post("/v1/broadcasts", json={"body": "promo"}, headers=bearer(app["server_key"]))
        ids.append(r.get_json()["id"])
    for _, _, headers in phones:
        got = client.post("/v1/device/sync", json={}, headers=headers).get_json()["messages"]
        client.post("/v1/device/sync", json={"ack": [m["id"] for m in got]}, headers=headers)

    def all_acked(events):
        return sum(len(e["acks"]) for e in events if e["event"] == "notification.acked") >= 15

    heard.until(all_acked)
    assert [e["notification_id"] for e in heard.named("notification.sent")] == ids
    assert all("device_id" not in e for e in heard.named("notification.sent"))
    acks = [
        (a["notification_id"], a["device_id"])
        for e in heard.named("notification.acked")
        for a in e["acks"]
    ]
    assert sorted(acks) == sorted((n, d) for n in ids for d, _, _ in phones)
    assert len(heard.named("notification.acked")) < len(acks)  # batched, not one an ack


def test_each_item_of_a_batch_is_a_sent_event_as_a_single_send_is(client, settings, listener):
    app = new_app(client, settings, "batch-events")
    heard = Heard(listener, app["id"])
    device_id, _, _ = device_session(client, app, user_id="eve")
    r = client.post(
        "/v1/notifications/batch",
        json={
            "notifications": [
                {"to": {"device_id": device_id}, "title": "one"},
                {"to": {"user_id": "eve"}, "title": "two"},
                {"to": {"device_id": "999999999"}, "title": "nobody"},
            ]
        },
        headers=bearer(app["server_key"]),
    )
    first, second, third = r.get_json()["results"]
    assert "error" in third
    heard.until(lambda events: len([e for e in events if e["event"] == "notification.sent"]) >= 2)
    sent = {e["notification_id"]: e for e in heard.named("notification.sent")}
    assert set(sent) == {first["id"], second["id"]}
    assert sent[first["id"]]["device_id"] == device_id and sent[first["id"]]["targets"] == 1
    assert sent[second["id"]]["user_id"] == "eve"


def test_registering_again_says_so(client, settings, listener):
    app = new_app(client, settings, "events-again")
    heard = Heard(listener, app["id"])
    body = {"installation_id": "same-phone", "platform": "ios"}
    for _ in range(2):
        client.post("/v1/devices", json=body, headers={"X-App-Key": app["app_key"]})
    heard.until(lambda events: len(events) >= 2)
    assert [e["again"] for e in heard.named("device.registered")] == [False, True]
    assert {e["installation_id"] for e in heard.events} == {"same-phone"}


def test_a_finished_campaign_is_told_with_its_counters(app, client, settings, listener):
    shop = new_app(client, settings, "events-campaign")
    heard = Heard(listener, shop["id"])
    # campaigns call this when one ends (done, cancelled, failed)
    app.extensions["pushbox"].events.campaign_finished(
        shop["id"], "c-42", "done", targets=3, published=3
    )
    (finished,) = heard.until(lambda events: len(events) == 1)
    assert finished == {
        **finished,
        "event": "campaign.finished",
        "app_id": shop["id"],
        "campaign_id": "c-42",
        "status": "done",
        "targets": 3,
        "published": 3,
    }
