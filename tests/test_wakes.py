"""Waking apps in the background (DESIGN "Waking apps in the background (FCM and APNs)"):
credentials, push tokens, and the wake worker against local stand-ins of FCM and APNs
that speak their wire protocols over real TLS (tests/standins).

The wake worker runs in this process (a thread), on the real MySQL, RabbitMQ and Redis;
sends go through the in-process API."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pika
import pytest
import requests
from prometheus_client import REGISTRY

from dispatcher.bootstrap import bootstrap
from dispatcher.delivery.tally import Tally
from dispatcher.platforms.wake_worker import WakeWorker
from pushbox_core.names import Names
from pushbox_core.settings import Settings
from sdk_stub.events import EventListener
from tests.conftest import api_of, namespace_of_its_own
from tests.support import bearer, eventually, new_app, scrape, value
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.usefixtures("wake_worker")


@pytest.fixture(scope="module")
def wake_worker(settings):
    pushbox = bootstrap(settings, role="test-wakes")
    worker = WakeWorker(pushbox)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(15)
    pushbox.close()


def apns_token() -> str:
    return secrets.token_hex(32)


def fcm_token() -> str:
    return "fcm-" + secrets.token_urlsafe(40)


class Shop:
    """An app with FCM and APNs credentials pointing at the stand-ins."""

    def __init__(self, client, settings, fcm, apns, name="wakes"):
        self.client = client
        self.app = new_app(client, settings, name)
        self.auth = bearer(self.app["server_key"])
        r = client.put(
            "/v1/app/credentials/fcm",
            json={"service_account": fcm.service_account},
            headers=self.auth,
        )
        assert r.status_code == 200, r.get_json()
        r = client.put("/v1/app/credentials/apns", json=apns.credentials(), headers=self.auth)
        assert r.status_code == 200, r.get_json()

    def device(self, platform: str, user_id: str | None = None, **fields) -> dict:
        """Register a device with a push token; its id, token and session headers."""
        provider, token = ("apns", apns_token()) if platform == "ios" else ("fcm", fcm_token())
        body = {
            "installation_id": secrets.token_hex(8),
            "platform": platform,
            "push_token": {"provider": provider, "token": token},
            **fields,
        }
        if user_id:
            body["user_id"] = user_id
        r = self.client.post("/v1/devices", json=body, headers={"X-App-Key": self.app["app_key"]})
        assert r.status_code == 201, r.get_json()
        reg = r.get_json()
        session = self.client.post("/v1/sessions", json=reg).get_json()["session_token"]
        return {"id": reg["device_id"], "token": token, "headers": bearer(session)}

    def notify(self, to: dict, **body) -> str:
        r = self.client.post("/v1/notifications", json={"to": to, **body}, headers=self.auth)
        assert r.status_code == 202, r.get_json()
        return r.get_json()["id"]

    def stats(self, notification_id: str) -> dict:
        return self.client.get(f"/v1/notifications/{notification_id}", headers=self.auth).get_json()


@pytest.fixture
def shop(client, settings, fcm_standin, apns_standin) -> Shop:
    return Shop(client, settings, fcm_standin, apns_standin)


def for_token(standin, token: str) -> list:
    """What the stand-in received for one device token."""
    if standin.name == "apns":
        return [r for r in standin.sends() if r.path.endswith("/" + token)]
    return [r for r in standin.sends() if r.json()["message"].get("token") == token]


def test_credentials_are_shown_without_their_keys_and_can_be_removed(
    client, settings, fcm_standin, apns_standin
):
    shop = Shop(client, settings, fcm_standin, apns_standin)
    r = client.get("/v1/app", headers=shop.auth)
    body = r.get_json()
    assert body["credentials"]["fcm"] == {
        "project_id": fcm_standin.project_id,
        "status": "active",
        "rejected_reason": None,
    }
    assert body["credentials"]["apns"]["bundle_id"] == apns_standin.bundle_id
    assert body["settings"] == {"marketing_cap_per_day": None, "push_content": "inline"}
    text = r.get_data(as_text=True)
    assert "PRIVATE KEY" not in text and "private_key" not in text
    assert client.delete("/v1/app/credentials/fcm", headers=shop.auth).status_code == 204
    assert client.get("/v1/app", headers=shop.auth).get_json()["credentials"]["fcm"] is None


def test_private_keys_are_stored_sealed(client, settings, fcm_standin, apns_standin, app):
    shop = Shop(client, settings, fcm_standin, apns_standin)
    rows = app.extensions["pushbox"].db.query(
        "SELECT sealed FROM app_credentials WHERE app_id = %s", (shop.app["id"],)
    )
    assert len(rows) == 2
    for row in rows:
        assert "PRIVATE KEY" not in row["sealed"] and "client_email" not in row["sealed"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/app/credentials/fcm", {"service_account": {"type": "user"}}, "service_account.type"),
        ("/v1/app/credentials/fcm", {}, "service_account"),
        (
            "/v1/app/credentials/apns",
            {
                "team_id": "TEAM000001",
                "key_id": "KEY0000001",
                "bundle_id": "com.example.x",
                "environment": "production",
                "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            },
            "private_key",
        ),
        ("/v1/app/credentials/apns", {"team_id": "TEAM000001"}, "key_id"),
    ],
)
def test_bad_credentials_are_422_naming_the_field(client, settings, path, body, field):
    shop = new_app(client, settings)
    r = client.put(path, json=body, headers=bearer(shop["server_key"]))
    assert r.status_code == 422, r.get_json()
    assert field in json.dumps(r.get_json()["errors"])
    got = client.get("/v1/app", headers=bearer(shop["server_key"])).get_json()
    assert got["credentials"] == {"fcm": None, "apns": None}  # nothing half-written


def test_push_tokens_are_set_shown_changed_and_removed(client, settings):
    shop = new_app(client, settings)
    key = {"X-App-Key": shop["app_key"]}
    for token, field in [
        ({"provider": "apns", "token": "not-hex"}, "token"),
        ({"provider": "webpush", "token": fcm_token()}, "provider"),
    ]:
        r = client.post(
            "/v1/devices",
            json={"installation_id": "t1", "platform": "ios", "push_token": token},
            headers=key,
        )
        assert r.status_code == 422 and field in json.dumps(r.get_json()["errors"])
    reg = client.post(
        "/v1/devices",
        json={
            "installation_id": "t1",
            "platform": "ios",
            "push_token": {"provider": "apns", "token": apns_token()},
        },
        headers=key,
    ).get_json()
    headers = bearer(client.post("/v1/sessions", json=reg).get_json()["session_token"])
    device = client.get("/v1/device", headers=headers).get_json()
    assert device["push"] == {"provider": "apns", "status": "active", "invalid_reason": None}
    assert device["connected"] is False
    assert "token" not in device["push"]
    changed = client.patch(
        "/v1/device",
        json={"push_token": {"provider": "fcm", "token": fcm_token()}},
        headers=headers,
    )
    assert changed.get_json()["push"]["provider"] == "fcm"
    kept = client.patch("/v1/device", json={"locale": "de"}, headers=headers).get_json()
    assert kept["push"]["provider"] == "fcm"  # fields left out keep their values
    removed = client.patch("/v1/device", json={"push_token": None}, headers=headers)
    assert removed.get_json()["push"] is None


def test_a_notification_wakes_each_disconnected_device_of_the_user(shop, fcm_standin, apns_standin):
    android = shop.device("android", user_id="ada")
    iphone = shop.device("ios", user_id="ada")
    sent = shop.notify(
        {"user_id": "ada"}, title="Order 7 shipped", body="On its way", collapse_key="order-7"
    )
    fcm_got = eventually(lambda: for_token(fcm_standin, android["token"]))
    apns_got = eventually(lambda: for_token(apns_standin, iphone["token"]))
    assert len(fcm_got) == 1 and len(apns_got) == 1
    message = fcm_got[0].json()["message"]
    assert message["notification"] == {"title": "Order 7 shipped", "body": "On its way"}
    assert message["android"]["priority"] in ("high", "HIGH")
    assert message["android"]["collapse_key"] == "order-7"
    assert message["data"]["pushbox_id"] == sent
    assert message["data"]["pushbox_kind"] == "notification"
    push = apns_got[0]
    assert push.headers["apns-push-type"] == "alert" and push.headers["apns-priority"] == "10"
    assert push.headers["apns-collapse-id"] == "order-7"
    payload = push.json()
    assert payload["aps"]["alert"] == {"title": "Order 7 shipped", "body": "On its way"}
    assert payload["pushbox"] == {"id": sent, "kind": "notification"}
    assert eventually(lambda: shop.stats(sent)["woken"] == 2)
    # the app then syncs and gets the message from its queue, as always
    r = shop.client.post("/v1/device/sync", json={}, headers=android["headers"])
    assert [m["id"] for m in r.get_json()["messages"]] == [sent]


def test_a_device_waiting_in_a_sync_gets_no_platform_push(shop, fcm_standin, stack, http):
    waiting = shop.device("android", user_id="wes")
    asleep = shop.device("android", user_id="wes")
    answer: dict = {}

    def wait() -> None:
        with requests.Session() as s:
            answer["r"] = s.post(
                f"{stack.base}/v1/device/sync",
                json={"wait": 30},
                headers=waiting["headers"],
                timeout=40,
            )

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    me = shop.client.get("/v1/device", headers=waiting["headers"])
    assert eventually(
        lambda: shop.client.get("/v1/device", headers=waiting["headers"]).get_json()["connected"]
    ), me.get_json()
    sent = shop.notify({"user_id": "wes"}, title="hello")
    assert eventually(lambda: for_token(fcm_standin, asleep["token"]))
    thread.join(20)
    assert [m["id"] for m in answer["r"].json()["messages"]] == [sent]
    assert eventually(lambda: shop.stats(sent)["woken"] == 1)
    assert for_token(fcm_standin, waiting["token"]) == []


def test_a_broadcast_wakes_every_disconnected_device_with_a_token(shop, fcm_standin, apns_standin):
    devices = [shop.device("android"), shop.device("ios"), shop.device("android")]
    r = shop.client.post("/v1/broadcasts", json={"title": "Sale"}, headers=shop.auth)
    sent = r.get_json()["id"]
    for d in devices:
        standin = apns_standin if len(d["token"]) == 64 else fcm_standin
        assert eventually(lambda d=d, standin=standin: for_token(standin, d["token"]))
    assert eventually(lambda: shop.stats(sent)["woken"] == 3)


def test_silent_wakes_are_background_pushes_coalesced_and_skip_empty_queues(
    shop, apns_standin, app, names
):
    phone = shop.device("ios")
    first = shop.notify({"device_id": phone["id"]}, data={"k": "v"})  # no title: silent
    got = eventually(lambda: for_token(apns_standin, phone["token"]))
    assert len(got) == 1
    assert got[0].headers["apns-push-type"] == "background"
    assert got[0].headers["apns-priority"] == "5"
    payload = got[0].json()
    assert payload["aps"] == {"content-available": 1}
    assert payload["pushbox"] == {"id": first, "kind": "notification"}
    second = shop.notify({"device_id": phone["id"]}, wake="silent", title="quiet")
    # coalesced: within 30 s of the first, the sync gets everything anyway
    assert eventually(lambda: shop.stats(second)["targets"] == 1)
    time.sleep(1.0)  # give the worker time to (wrongly) push: there must be none
    assert len(for_token(apns_standin, phone["token"])) == 1
    # a later silent wake to a device whose queues were emptied is skipped
    redis = app.extensions["pushbox"].redis
    redis.delete(names.wake_coalesce_key(phone["id"]))
    third = shop.notify({"device_id": phone["id"]}, wake="silent")
    synced = shop.client.post("/v1/device/sync", json={}, headers=phone["headers"]).get_json()
    ids = [m["id"] for m in synced["messages"]]
    shop.client.post("/v1/device/sync", json={"ack": ids}, headers=phone["headers"])
    assert third in ids


def test_apns_gets_at_most_three_silent_wakes_a_device_an_hour(shop, apns_standin, app, names):
    phone = shop.device("ios")
    redis = app.extensions["pushbox"].redis
    sent = []
    for i in range(5):
        redis.delete(names.wake_coalesce_key(phone["id"]))  # as if the window had passed
        sent.append(shop.notify({"device_id": phone["id"]}, data={"n": str(i)}))
        eventually(lambda n=i: len(for_token(apns_standin, phone["token"])) >= min(n + 1, 3), 5)
    time.sleep(1.0)
    assert len(for_token(apns_standin, phone["token"])) == 3


def test_a_dead_token_is_marked_invalid_and_never_used_again(shop, fcm_standin):
    phone = shop.device("android")
    fcm_standin.fail(phone["token"], 404, "UNREGISTERED")
    first = shop.notify({"device_id": phone["id"]}, title="one")
    assert eventually(lambda: shop.stats(first)["wake_failed"] == 1)
    device = shop.client.get("/v1/device", headers=phone["headers"]).get_json()
    assert device["push"] == {
        "provider": "fcm",
        "status": "invalid",
        "invalid_reason": "UNREGISTERED",
    }
    second = shop.notify({"device_id": phone["id"]}, title="two")
    time.sleep(1.0)
    assert len(for_token(fcm_standin, phone["token"])) == 1  # only the first
    assert shop.stats(second)["wake_failed"] == 0
    # the message itself waits in the queue
    got = shop.client.post("/v1/device/sync", json={}, headers=phone["headers"]).get_json()
    assert [m["id"] for m in got["messages"]] == [first, second]


def test_a_dead_token_tells_other_services_once_and_is_counted(shop, fcm_standin, settings, stack):
    listener = EventListener(settings.rabbitmq_url, settings.namespace, ["token.invalid"])
    labels = {"provider": "fcm", "result": "invalid_token"}

    def counted() -> float:
        """The stack's wake worker consumes the same wake queue as this module's: the
        push is counted by whichever took the job."""
        here = REGISTRY.get_sample_value("pushbox_wakes_total", labels) or 0
        return here + value(scrape(stack.base), "pushbox_wakes_total", **labels)

    before = counted()
    phone = shop.device("android")
    fcm_standin.fail(phone["token"], 404, "UNREGISTERED")
    sent = shop.notify({"device_id": phone["id"]}, title="one")
    assert eventually(lambda: shop.stats(sent)["wake_failed"] == 1)
    heard: list[dict] = []

    def told() -> bool:
        heard.extend(e for e in listener.take() if e["device_id"] == phone["id"])
        return bool(heard)

    assert eventually(told)
    listener.close()
    assert heard == [
        {
            **heard[0],
            "event": "token.invalid",
            "app_id": shop.app["id"],
            "provider": "fcm",
            "reason": "UNREGISTERED",
        }
    ]
    assert eventually(lambda: counted() == before + 1)


def test_apns_bad_device_token_is_invalid_but_an_old_410_is_not(shop, apns_standin):
    phone = shop.device("ios")
    apns_standin.fail(phone["token"], 410, "Unregistered", timestamp_ms=1000)  # before registration
    first = shop.notify({"device_id": phone["id"]}, title="one")
    assert eventually(lambda: shop.stats(first)["wake_failed"] == 1)
    device = shop.client.get("/v1/device", headers=phone["headers"]).get_json()
    assert device["push"]["status"] == "active"
    apns_standin.fail(phone["token"], 400, "BadDeviceToken")
    second = shop.notify({"device_id": phone["id"]}, title="two")
    assert eventually(lambda: shop.stats(second)["wake_failed"] == 1)
    device = shop.client.get("/v1/device", headers=phone["headers"]).get_json()
    assert device["push"] == {
        "provider": "apns",
        "status": "invalid",
        "invalid_reason": "BadDeviceToken",
    }


def test_retryable_errors_are_retried_honouring_retry_after(shop, apns_standin, fcm_standin):
    iphone = shop.device("ios")
    android = shop.device("android")
    apns_standin.fail(iphone["token"], 503, "ServiceUnavailable")
    fcm_standin.fail(android["token"], 429, "QUOTA_EXCEEDED", retry_after=1)
    a = shop.notify({"device_id": iphone["id"]}, title="a")
    b = shop.notify({"device_id": android["id"]}, title="b")
    assert eventually(lambda: shop.stats(a)["woken"] == 1)
    assert eventually(lambda: shop.stats(b)["woken"] == 1)
    tries = for_token(fcm_standin, android["token"])
    assert len(tries) == 2
    assert tries[1].at - tries[0].at >= 1.0  # Retry-After: 1 was waited out
    assert len(for_token(apns_standin, iphone["token"])) == 2


def test_private_mode_sends_no_content_in_clear(shop, fcm_standin, apns_standin):
    r = shop.client.patch(
        "/v1/app", json={"settings": {"push_content": "private"}}, headers=shop.auth
    )
    assert r.get_json()["settings"]["push_content"] == "private"
    android, iphone = shop.device("android"), shop.device("ios")
    for d in (android, iphone):
        shop.notify(
            {"device_id": d["id"]},
            title="SECRET-TITLE",
            body="SECRET-BODY",
            data={"SECRET-KEY": "SECRET-VALUE"},
            collapse_key="SECRET-COLLAPSE",
        )
    got = eventually(lambda: for_token(fcm_standin, android["token"])) + eventually(
        lambda: for_token(apns_standin, iphone["token"])
    )
    for request in got:
        wire = request.body + json.dumps(request.headers).encode()
        assert b"SECRET" not in wire
    assert got[1].json()["aps"]["mutable-content"] == 1


def test_switching_to_private_holds_for_the_very_next_push(shop, fcm_standin):
    """The worker reads the app for every job: a push right after `push_content:
    private` carries no content, however recently the app was pushed to before."""
    phone = shop.device("android")
    shop.notify({"device_id": phone["id"]}, title="OPEN-TITLE")
    [first] = eventually(lambda: for_token(fcm_standin, phone["token"]))
    assert b"OPEN-TITLE" in first.body
    r = shop.client.patch(
        "/v1/app", json={"settings": {"push_content": "private"}}, headers=shop.auth
    )
    assert r.status_code == 200
    shop.notify({"device_id": phone["id"]}, title="SECRET-TITLE", body="SECRET-BODY")
    got = eventually(lambda: for_token(fcm_standin, phone["token"])[1:])
    assert b"SECRET" not in got[0].body + json.dumps(got[0].headers).encode()


def test_a_platform_that_is_down_delays_wakes_and_loses_no_message(shop, fcm_standin):
    phone = shop.device("android")
    fcm_standin.stop()
    try:
        sent = shop.notify({"device_id": phone["id"]}, title="while down")
        got = shop.client.post("/v1/device/sync", json={}, headers=phone["headers"]).get_json()
        assert [m["id"] for m in got["messages"]] == [sent]
    finally:
        fcm_standin.start()
    assert eventually(lambda: shop.stats(sent)["woken"] + shop.stats(sent)["wake_failed"] == 1, 60)


def test_wake_none_sends_no_platform_push(shop, fcm_standin):
    phone = shop.device("android")
    sent = shop.notify({"device_id": phone["id"]}, title="quiet", wake="none")
    time.sleep(1.0)
    assert for_token(fcm_standin, phone["token"]) == []
    assert shop.stats(sent)["woken"] == 0
    r = shop.client.post(
        "/v1/notifications",
        json={"to": {"device_id": phone["id"]}, "wake": "loud"},
        headers=shop.auth,
    )
    assert r.status_code == 422 and "wake" in json.dumps(r.get_json()["errors"])


def test_a_key_rotation_reseals_every_credential(client, settings, fcm_standin, apns_standin, app):
    """PUSH_SECRETS_KEY=<new>,<old>, reseal, then <new> alone still opens every key."""

    from dispatcher.platforms.credentials import open_credentials, reseal_all
    from pushbox_core.sealing import Sealer, new_key

    shop = Shop(client, settings, fcm_standin, apns_standin)
    store = app.extensions["pushbox"].store
    fresh = new_key()
    both = Sealer(f"{fresh},{settings.secrets_key}")
    assert reseal_all(store=store, sealer=both) >= 2
    alone = Sealer(replace(settings, secrets_key=fresh).secrets_key)
    try:
        for cred in store.credentials(shop.app["id"]).values():
            assert open_credentials(cred, alone).public() == cred.public
    finally:  # back to the run's own key, which the other tests' processes hold
        reseal_all(store=store, sealer=Sealer(f"{settings.secrets_key},{fresh}"))


def test_the_same_dead_token_sent_again_stays_invalid_a_new_one_is_used(shop, fcm_standin):
    phone = shop.device("android")
    fcm_standin.fail(phone["token"], 404, "UNREGISTERED")
    first = shop.notify({"device_id": phone["id"]}, title="one")
    assert eventually(lambda: shop.stats(first)["wake_failed"] == 1)
    same = {"push_token": {"provider": "fcm", "token": phone["token"]}}
    r = shop.client.patch("/v1/device", json=same, headers=phone["headers"])
    assert r.get_json()["push"]["status"] == "invalid"
    fresh = fcm_token()
    new = {"push_token": {"provider": "fcm", "token": fresh}}
    r = shop.client.patch("/v1/device", json=new, headers=phone["headers"])
    assert r.get_json()["push"] == {"provider": "fcm", "status": "active", "invalid_reason": None}
    second = shop.notify({"device_id": phone["id"]}, title="two")
    assert eventually(lambda: for_token(fcm_standin, fresh))
    assert eventually(lambda: shop.stats(second)["woken"] == 1)


def test_refused_credentials_are_marked_and_not_retried_within_a_minute(shop, fcm_standin):
    fcm_standin.refuse_tokens()  # Google refuses the service account's key
    phone = shop.device("android")
    first = shop.notify({"device_id": phone["id"]}, title="one")
    assert eventually(lambda: shop.stats(first)["wake_failed"] == 1)
    fcm = shop.client.get("/v1/app", headers=shop.auth).get_json()["credentials"]["fcm"]
    assert fcm["status"] == "rejected" and fcm["rejected_reason"]
    asked = len(fcm_standin.token_requests())
    second = shop.notify({"device_id": phone["id"]}, title="two")
    assert eventually(lambda: shop.stats(second)["wake_failed"] == 1)
    assert len(fcm_standin.token_requests()) == asked  # not asked again within the minute
    assert for_token(fcm_standin, phone["token"]) == []


def test_refused_credentials_that_work_again_are_active_at_once(shop, fcm_standin, app):
    """Credentials refused, then accepted again on a retry, are active for the very next
    job (nothing in the worker keeps the refused state)."""
    fcm_standin.refuse_tokens()
    phone = shop.device("android")
    first = shop.notify({"device_id": phone["id"]}, title="one")
    assert eventually(lambda: shop.stats(first)["wake_failed"] == 1)
    fcm_standin.reset()  # Google takes the key again
    app.extensions["pushbox"].db.execute(  # as a minute later: the next push tries it
        "UPDATE app_credentials SET rejected_at = rejected_at - INTERVAL 2 MINUTE"
        " WHERE app_id = %s",
        (shop.app["id"],),
    )
    second = shop.notify({"device_id": phone["id"]}, title="two")
    assert eventually(lambda: shop.stats(second)["woken"] == 1)
    fcm = shop.client.get("/v1/app", headers=shop.auth).get_json()["credentials"]["fcm"]
    assert fcm["status"] == "active"
    third = shop.notify({"device_id": phone["id"]}, title="three")  # at once, not in 5 s
    assert eventually(lambda: shop.stats(third)["woken"] == 1, 3)
    assert len(for_token(fcm_standin, phone["token"])) == 2


# ---- a worker alone on a wake queue of its own (the module's worker consumes the other)
@pytest.fixture(scope="module")
def alone(settings: Settings) -> Iterator[Settings]:
    with namespace_of_its_own(settings, "w") as s:
        yield s


@pytest.fixture(scope="module")
def alone_api(alone):
    with api_of(alone) as flask_app:
        yield flask_app


def test_a_clean_stop_writes_the_counts_of_the_jobs_it_acked(
    alone, alone_api, fcm_standin, apns_standin
):
    """A job is acked once its counts are handed to the worker's tally, before they are
    written (here a tally that never writes on its own); stopping the worker writes them."""
    shop = Shop(alone_api.test_client(), alone, fcm_standin, apns_standin)
    phone = shop.device("android")
    pushbox = bootstrap(alone, role="test-wakes-stop")
    tally = Tally(pushbox.notifications, flush_s=3600)
    worker = WakeWorker(pushbox, tally=tally)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        sent = shop.notify({"device_id": phone["id"]}, title="counted at the stop")
        assert eventually(lambda: for_token(fcm_standin, phone["token"]))
        assert eventually(lambda: tally.pending() == 1)
        assert shop.stats(sent)["woken"] == 0  # handed over, not written yet
        worker.stop()
        thread.join(15)
        assert not thread.is_alive()
        assert shop.stats(sent)["woken"] == 1  # written by the stop itself
        conn = pika.BlockingConnection(pika.URLParameters(alone.rabbitmq_url))
        waiting = conn.channel().queue_declare(
            Names(alone.namespace, alone.redis_prefix).wake_queue, passive=True
        )
        conn.close()
        assert waiting.method.message_count == 0  # acked: not handed back at the stop
    finally:
        worker.stop()
        thread.join(15)
        pushbox.close()


def test_jobs_that_meet_redis_down_come_back_and_the_others_are_acked(
    alone, alone_api, fcm_standin, apns_standin
):
    """A job whose checks fail (Redis down) is handed back and pushed once Redis is back;
    jobs settled meanwhile are acked (several at once when they are the oldest)."""
    shop = Shop(alone_api.test_client(), alone, fcm_standin, apns_standin)
    phones = [shop.device("android") for _ in range(3)]
    proxy = TcpProxy("127.0.0.1", 6379)
    pushbox = bootstrap(replace(alone, redis_url=f"redis://127.0.0.1:{proxy.port}/0"), role="t")
    worker = WakeWorker(pushbox)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        first = [shop.notify({"device_id": p["id"]}, title="before") for p in phones]
        assert eventually(lambda: all(shop.stats(n)["woken"] == 1 for n in first))
        proxy.cut()
        during = shop.notify({"device_id": phones[0]["id"]}, title="during")
        time.sleep(1.5)  # tried, handed back, tried again
        assert shop.stats(during)["woken"] == 0
        proxy.restore()
        assert eventually(lambda: shop.stats(during)["woken"] == 1)
        assert len(for_token(fcm_standin, phones[0]["token"])) == 2
        conn = pika.BlockingConnection(pika.URLParameters(alone.rabbitmq_url))
        queue = Names(alone.namespace, alone.redis_prefix).wake_queue
        ch = conn.channel()
        worker.stop()
        thread.join(15)
        assert ch.queue_declare(queue, passive=True).method.message_count == 0  # all acked
        conn.close()
    finally:
        worker.stop()
        thread.join(15)
        pushbox.close()
        proxy.close()
