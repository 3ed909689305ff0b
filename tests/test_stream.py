"""The live stream (DESIGN "Live stream"), as phones meet it: a WebSocket through nginx
and both API instances, driven by a real WebSocket client library (websocket-client)."""

from __future__ import annotations

import json
import struct
import time
import uuid

import pytest
import websocket

from sdk_stub.events import EventListener
from tests.support import bearer, eventually, grew, scrape


@pytest.fixture
def shop(http, stack, settings) -> dict:
    r = http.post(
        f"{stack.base}/v1/apps", json={"name": "stream"}, headers=bearer(settings.admin_token)
    )
    assert r.status_code == 201
    return r.json()


class Phone:
    def __init__(self, http, base: str, shop: dict, **fields):
        self.http, self.base = http, base
        body = {"installation_id": uuid.uuid4().hex, "platform": "android", **fields}
        r = http.post(f"{base}/v1/devices", json=body, headers={"X-App-Key": shop["app_key"]})
        assert r.status_code == 201, r.text
        reg = r.json()
        self.device_id = reg["device_id"]
        self.token = http.post(f"{base}/v1/sessions", json=reg).json()["session_token"]

    def stream(
        self, base: str | None = None, window: int | None = None, **kw
    ) -> websocket.WebSocket:
        return connect(base or self.base, self.token, window=window, **kw)

    def sync(self, base: str | None = None, **body) -> list[dict]:
        r = self.http.post(
            f"{base or self.base}/v1/device/sync", json=body, headers=bearer(self.token), timeout=40
        )
        assert r.status_code == 200, r.text
        return r.json()["messages"]


def connect(base: str, token: str | None, *, window=None, header=True) -> websocket.WebSocket:
    url = "ws" + base.removeprefix("http") + "/v1/device/stream"
    if window is not None:
        url += f"?window={window}"
    headers = [f"Authorization: Bearer {token}"] if header and token else []
    return websocket.create_connection(url, header=headers, timeout=10)


def frames(ws: websocket.WebSocket, n: int) -> list[dict]:
    """The next n message frames (each within the socket's timeout)."""
    got = []
    while len(got) < n:
        frame = json.loads(ws.recv())
        assert frame["op"] == "message", frame
        got.append(frame)
    return got


def nothing_more(ws: websocket.WebSocket, seconds: float = 1.0) -> bool:
    ws.settimeout(seconds)
    try:
        ws.recv()
        return False
    except websocket.WebSocketTimeoutException:
        return True
    finally:
        ws.settimeout(10)


def close_code(ws: websocket.WebSocket) -> int:
    """The code the server closed the stream with."""
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005


def ack(ws: websocket.WebSocket, ids: list[str]) -> None:
    ws.send(json.dumps({"op": "ack", "ids": ids}))


class Backend:
    def __init__(self, http, base, shop):
        self.http, self.base, self.auth = http, base, bearer(shop["server_key"])

    def broadcast(self, **body) -> str:
        r = self.http.post(f"{self.base}/v1/broadcasts", json=body, headers=self.auth)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def notify(self, device_id: str, **body) -> str:
        r = self.http.post(
            f"{self.base}/v1/notifications",
            json={"to": {"device_id": device_id}, **body},
            headers=self.auth,
        )
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def stats(self, notification_id: str) -> dict:
        r = self.http.get(f"{self.base}/v1/notifications/{notification_id}", headers=self.auth)
        return r.json()


@pytest.fixture
def backend(http, stack, shop) -> Backend:
    return Backend(http, stack.base, shop)


@pytest.fixture
def phone(http, stack, shop) -> Phone:
    return Phone(http, stack.base, shop)


def test_backlog_then_live_messages_high_lane_first(phone, backend):
    promos = [backend.broadcast(title=f"promo {i}") for i in range(3)]
    order = backend.notify(phone.device_id, title="shipped")
    ws = phone.stream()
    try:
        got = frames(ws, 4)
        assert [m["id"] for m in got] == [order, *promos]
        assert got[0]["priority"] == "high" and got[0]["title"] == "shipped"
        assert not any(m["redelivered"] for m in got)
        live = backend.notify(phone.device_id, title="out for delivery")
        assert [m["id"] for m in frames(ws, 1)] == [live]
    finally:
        ws.close()


def test_the_window_bounds_what_is_in_flight_and_acks_open_it(phone, backend):
    ids = [backend.notify(phone.device_id, title=f"n{i}") for i in range(12)]
    ws = phone.stream(window=5)
    try:
        first = frames(ws, 5)
        assert [m["id"] for m in first] == ids[:5]
        assert nothing_more(ws)  # five unacked: the server sends no sixth
        ack(ws, ids[:2])
        assert [m["id"] for m in frames(ws, 2)] == ids[5:7]
        assert nothing_more(ws)
    finally:
        ws.close()


def test_acked_leave_unacked_come_back_redelivered_on_a_stream_and_on_a_sync(phone, backend, stack):
    ids = [backend.notify(phone.device_id, title=f"n{i}") for i in range(4)]
    ws = phone.stream()
    assert [m["id"] for m in frames(ws, 4)] == ids
    ack(ws, ids[:2])
    assert eventually(lambda: backend.stats(ids[1])["acked"] == 1)
    ws.close()
    again = phone.stream(base=stack.instances[1])
    try:
        got = frames(again, 2)
        assert [(m["id"], m["redelivered"]) for m in got] == [(ids[2], True), (ids[3], True)]
    finally:
        again.close()
    synced = phone.sync(base=stack.instances[0])
    assert [(m["id"], m["redelivered"]) for m in synced] == [(ids[2], True), (ids[3], True)]


def test_acks_on_a_stream_are_told_to_other_services(phone, backend, settings):
    """As a sync's acks: `notification.acked` names the message and the device."""
    listener = EventListener(settings.rabbitmq_url, settings.namespace, ["notification.acked"])
    try:
        sent = backend.notify(phone.device_id, title="n")
        ws = phone.stream()
        try:
            assert [m["id"] for m in frames(ws, 1)] == [sent]
            ack(ws, [sent])
            heard: list[dict] = []

            def told() -> bool:
                heard.extend(a for e in listener.take() for a in e.get("acks", []))
                return {"notification_id": sent, "device_id": phone.device_id} in heard

            assert eventually(told), heard
        finally:
            ws.close()
    finally:
        listener.close()


def test_collapse_and_expiry_hold_on_the_stream(phone, backend):
    old = backend.notify(phone.device_id, title="3 stops away", collapse_key="eta")
    new = backend.notify(phone.device_id, title="1 stop away", collapse_key="eta")
    short = backend.notify(phone.device_id, title="flash", ttl=1)
    time.sleep(1.2)  # the short one expires in its queue
    ws = phone.stream()
    try:
        assert [m["id"] for m in frames(ws, 1)] == [new]
        assert nothing_more(ws)
    finally:
        ws.close()
    assert eventually(lambda: backend.stats(old)["collapsed"] == 1)
    assert eventually(lambda: backend.stats(short)["expired"] == 1)


def test_a_device_never_sees_or_acks_another_devices_messages(http, stack, shop, backend):
    a, b = Phone(http, stack.base, shop), Phone(http, stack.base, shop)
    for_a = backend.notify(a.device_id, title="for a")
    wa, wb = a.stream(), b.stream()
    try:
        assert [m["id"] for m in frames(wa, 1)] == [for_a]
        ack(wb, [for_a])  # b acks a's id: ignored
        assert nothing_more(wb)
        for_b = backend.notify(b.device_id, title="for b")
        assert [m["id"] for m in frames(wb, 1)] == [for_b]
        assert backend.stats(for_a)["acked"] == 0
    finally:
        wa.close()
        wb.close()
    assert [m["id"] for m in a.sync()] == [for_a]


def test_a_newer_stream_on_the_other_instance_replaces_the_older(phone, backend, stack):
    sent = backend.notify(phone.device_id, title="once")
    first = phone.stream(base=stack.instances[0])
    assert [m["id"] for m in frames(first, 1)] == [sent]
    second = phone.stream(base=stack.instances[1])
    try:
        assert close_code(first) == 4001
        got = frames(second, 1)
        assert (got[0]["id"], got[0]["redelivered"]) == (sent, True)
    finally:
        second.close()


def test_a_sync_replaces_a_stream(phone, backend, stack):
    ws = phone.stream(base=stack.instances[0])
    sent = backend.notify(phone.device_id, title="x")
    assert [m["id"] for m in frames(ws, 1)] == [sent]
    assert [m["id"] for m in phone.sync(base=stack.instances[1])] == [sent]
    assert close_code(ws) == 4001


def test_deleting_the_device_ends_its_stream(phone, http, stack):
    ws = phone.stream(base=stack.instances[0])
    r = http.delete(f"{stack.instances[1]}/v1/device", headers=bearer(phone.token))
    assert r.status_code == 204
    assert close_code(ws) == 4004


def test_a_connected_device_is_online_and_connected(phone, http, stack):
    ws = phone.stream()

    def me() -> dict:
        return http.get(f"{stack.base}/v1/device", headers=bearer(phone.token)).json()

    try:
        assert eventually(lambda: me()["connected"])
        assert me()["online"] is True
    finally:
        ws.close()


def test_auth_by_first_frame_and_refusals(phone, backend, stack):
    sent = backend.notify(phone.device_id, title="hi")
    browser = connect(stack.base, None)
    browser.send(json.dumps({"op": "auth", "token": phone.token}))
    try:
        assert [m["id"] for m in frames(browser, 1)] == [sent]
    finally:
        browser.close()
    wrong = connect(stack.base, None)
    wrong.send(json.dumps({"op": "auth", "token": "st_nope"}))
    assert close_code(wrong) == 4003
    silent = connect(stack.base, None)  # never says who it is
    assert close_code(silent) == 4003
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(stack.base, "st_nope")
    assert refused.value.status_code == 401


def test_a_window_out_of_range_is_422_before_the_upgrade(phone, stack):
    for window in (0, 501, "x"):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            phone.stream(window=window)
        assert refused.value.status_code == 422


def test_a_bad_frame_closes_the_stream_and_loses_nothing(phone, backend):
    sent = backend.notify(phone.device_id, title="kept")
    ws = phone.stream()
    assert [m["id"] for m in frames(ws, 1)] == [sent]
    ws.send("this is not json")
    assert close_code(ws) == 4000
    again = phone.stream()
    try:
        assert [(m["id"], m["redelivered"]) for m in frames(again, 1)] == [(sent, True)]
    finally:
        again.close()
    unknown = phone.stream()
    unknown.send(json.dumps({"op": "dance"}))
    assert close_code(unknown) == 4000


@pytest.fixture(scope="module")
def proxied(settings):
    """A stack of its own whose broker link goes through a TCP proxy the test owns."""
    from dataclasses import replace

    from tests.conftest import settings_env, stack_of_its_own
    from tests.tcp_proxy import TcpProxy

    proxy = TcpProxy("127.0.0.1", 5672)
    env = settings_env(
        replace(settings, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
    )
    try:
        with stack_of_its_own(env) as st:
            st.up()
            yield st, proxy
    finally:
        proxy.close()


def test_a_broker_cut_mid_stream_closes_1011_and_the_next_stream_gets_everything(
    proxied, http, settings
):
    st, proxy = proxied
    base = f"http://127.0.0.1:{st.nginx_port}"
    shop = http.post(
        f"{base}/v1/apps", json={"name": "cut"}, headers=bearer(settings.admin_token)
    ).json()
    phone, backend = Phone(http, base, shop), Backend(http, base, shop)
    before = backend.notify(phone.device_id, title="before")
    ws = phone.stream()
    assert [m["id"] for m in frames(ws, 1)] == [before]
    proxy.cut()
    try:
        assert close_code(ws) == 1011
    finally:
        proxy.restore()
    after = eventually(lambda: _sent(http, base, shop, phone.device_id))
    again = eventually(lambda: _stream(phone))
    try:
        got = frames(again, 2)
        assert [m["id"] for m in got] == [before, after]
        assert got[0]["redelivered"] is True
    finally:
        again.close()


def _sent(http, base, shop, device_id) -> str | None:
    """A send through a stack whose broker link may still be reconnecting."""
    r = http.post(
        f"{base}/v1/notifications",
        json={"to": {"device_id": device_id}, "title": "after"},
        headers=bearer(shop["server_key"]),
    )
    return r.json()["id"] if r.status_code == 202 else None


def _stream(phone: Phone) -> websocket.WebSocket | None:
    try:
        return phone.stream()
    except (websocket.WebSocketException, OSError):
        return None


def test_an_api_instance_killed_mid_stream_loses_nothing(proxied, http, settings):
    import os
    import signal

    st, _ = proxied
    base = f"http://127.0.0.1:{st.nginx_port}"
    shop = http.post(
        f"{base}/v1/apps", json={"name": "kill"}, headers=bearer(settings.admin_token)
    ).json()
    phone, backend = Phone(http, base, shop), Backend(http, base, shop)
    ids = [backend.notify(phone.device_id, title=f"k{i}") for i in range(3)]
    instance = f"http://127.0.0.1:{st.api_ports[0]}"
    ws = phone.stream(base=instance)
    got = frames(ws, 3)
    assert [m["id"] for m in got] == ids
    ack(ws, ids[:1])
    assert eventually(lambda: backend.stats(ids[0])["acked"] == 1)
    # the gunicorn worker serving the stream dies at once, as with a crash
    master = st.supervisor.pids()[f"api-{st.api_ports[0]}"]
    for pid in _children(master):
        os.kill(pid, signal.SIGKILL)
    with pytest.raises((websocket.WebSocketException, OSError)):
        ws.recv()
    again = eventually(lambda: _stream(phone))
    try:
        got = frames(again, 2)
        assert [(m["id"], m["redelivered"]) for m in got] == [(ids[1], True), (ids[2], True)]
    finally:
        again.close()


def _children(pid: int) -> list[int]:
    from pathlib import Path

    out = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(status.parent.name))
    return out


def test_the_sdk_streams_each_message_to_the_app_once_and_acks_it(http, stack, shop, backend):
    import threading

    from sdk_stub import Phone as SdkPhone

    phone = SdkPhone(stack.base, shop["app_key"])
    phone.open_session()
    got: list[dict] = []
    done = threading.Event()
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(phone.stream(got.append, until=done.is_set)), daemon=True
    )
    thread.start()
    ids = [backend.notify(phone.device_id, title=f"live {i}") for i in range(3)]
    assert eventually(lambda: len(got) >= 3)
    assert eventually(lambda: backend.stats(ids[-1])["acked"] == 1)
    done.set()
    thread.join(10)
    assert [m["id"] for m in got] == ids and codes == [1000]
    assert phone.sync() == []  # all acked: nothing comes back


def test_a_stream_older_than_a_claim_still_ends_when_the_device_syncs_elsewhere(
    phone, backend, stack, app, names
):
    """The holder key expires after 5 minutes unless renewed: here it is dropped, as its
    expiry would, and the stream's renewal (every 20 s) is not waited for: the claim
    names a process that lets go, and a stream whose claim is gone must still end."""
    redis = app.extensions["pushbox"].redis
    ws = phone.stream(base=stack.instances[0])
    sent = backend.notify(phone.device_id, title="a")
    assert [m["id"] for m in frames(ws, 1)] == [sent]
    claim = redis.get(names.holder_key(phone.device_id))
    assert claim and claim.split(" ")[0].startswith("api-")
    redis.delete(names.holder_key(phone.device_id))
    redis.set(names.holder_key(phone.device_id), claim, ex=300)  # as a renewal keeps it
    assert [m["id"] for m in phone.sync(base=stack.instances[1])] == [sent]
    assert close_code(ws) == 4001


def test_a_stale_long_poll_does_not_take_messages_from_a_newer_stream(phone, backend, stack):
    """A sync waiting on one instance, then a stream on the same instance: the stream is
    the device's now; the old request ends empty and the message goes to the stream."""
    import threading

    import requests

    answer: dict = {}

    def wait() -> None:
        with requests.Session() as s:
            answer["r"] = s.post(
                f"{stack.instances[0]}/v1/device/sync",
                json={"wait": 20},
                headers=bearer(phone.token),
                timeout=30,
            )

    waiting = threading.Thread(target=wait, daemon=True)
    waiting.start()
    time.sleep(0.5)  # let it wait
    ws = phone.stream(base=stack.instances[0])
    try:
        time.sleep(0.5)  # let the stream claim the device
        sent = backend.notify(phone.device_id, title="for the stream")
        assert [m["id"] for m in frames(ws, 1)] == [sent]
        waiting.join(25)
        assert answer["r"].json()["messages"] == []
        assert nothing_more(ws)
    finally:
        ws.close()


def test_the_delivery_latency_times_what_was_sent_while_the_stream_was_open(phone, backend, stack):
    """pushbox_stream_delivery_seconds: a backlog's age is the phone's time away, not
    Pushbox's latency; a message sent to an open stream is timed."""
    counted = "pushbox_stream_delivery_seconds_count"
    backlog = [backend.notify(phone.device_id, title=f"while away {i}") for i in range(2)]
    before = scrape(stack.base)
    ws = phone.stream()
    try:
        assert [m["id"] for m in frames(ws, 2)] == backlog
        assert grew(before, scrape(stack.base), counted) == 0
        live = backend.notify(phone.device_id, title="live")
        assert [m["id"] for m in frames(ws, 1)] == [live]
        assert grew(before, scrape(stack.base), counted) == 1
    finally:
        ws.close()
