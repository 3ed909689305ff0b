"""Phone: what an app does with Pushbox, as a Python object.

It registers once and keeps its installation id and secret in a small state file (as
an app keeps them on the phone), opens a session, syncs with long polling, hands each
new message to the app once (deduping by id, across restarts too), and acks what the
app handled on its next sync. It honours Retry-After on 429 and 503, opens a new
session when the old one expired, and registers again if its device is gone."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
import websocket

SEEN_IDS_KEPT = 20_000
RETRIES = 5


class SdkError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass
class State:
    installation_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    device_id: str | None = None
    device_secret: str | None = None
    seen: deque = field(default_factory=lambda: deque(maxlen=SEEN_IDS_KEPT))  # handled ids
    # acked on the next sync; kept in memory only: after a crash, what was not acked
    # comes back, and `seen` tells what the app had already handled
    to_ack: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | None) -> State:
        if path is None or not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        return cls(
            installation_id=raw["installation_id"],
            device_id=raw.get("device_id"),
            device_secret=raw.get("device_secret"),
            seen=deque(raw.get("seen", []), maxlen=SEEN_IDS_KEPT),
        )

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(
                {
                    "installation_id": self.installation_id,
                    "device_id": self.device_id,
                    "device_secret": self.device_secret,
                    "seen": list(self.seen),
                    "to_ack": self.to_ack,
                },
                f,
            )
        tmp.replace(path)  # atomic: a crash leaves the old state or the new one


class Phone:
    def __init__(
        self,
        base_url: str,
        app_key: str,
        *,
        state_file: str | Path | None = None,
        platform: str = "android",
        user_id: str | None = None,
        topics: list[str] | None = None,
        push_token: dict | None = None,
        http: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base = base_url.rstrip("/")
        self.app_key = app_key
        self.state_file = Path(state_file) if state_file else None
        self.state = State.load(self.state_file)
        self._seen_set = set(self.state.seen)
        self.platform, self.user_id, self.topics = platform, user_id, topics
        # {provider: fcm | apns, token}: what the phone's OS gave the app, to be woken by
        self.push_token = push_token
        self.http = http or requests.Session()
        self.sleep = sleep
        self.token: str | None = None
        self.online = True
        self.retries_after: list[float] = []  # Retry-After values honoured, for tests

    @property
    def device_id(self) -> str | None:
        return self.state.device_id

    # ---- calls
    def _call(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        headers: dict | None = None,
        timeout: float = 10,
    ) -> requests.Response:
        for _ in range(RETRIES):
            r = self.http.request(
                method, self.base + path, json=body, headers=headers, timeout=timeout
            )
            if r.status_code in (429, 503) and "Retry-After" in r.headers:
                wait = float(r.headers["Retry-After"])
                self.retries_after.append(wait)
                self.sleep(wait)
                continue
            return r
        return r

    def _auth(self) -> dict:
        if self.token is None:
            self.open_session()
        return {"Authorization": f"Bearer {self.token}"}

    def register(self) -> str:
        body: dict = {"installation_id": self.state.installation_id, "platform": self.platform}
        if self.user_id is not None:
            body["user_id"] = self.user_id
        if self.topics is not None:
            body["topics"] = self.topics
        if self.push_token is not None:
            body["push_token"] = self.push_token
        r = self._call("POST", "/v1/devices", body, headers={"X-App-Key": self.app_key})
        if r.status_code not in (200, 201):
            raise SdkError(r.status_code, r.json().get("message", r.text))
        reg = r.json()
        self.state.device_id, self.state.device_secret = reg["device_id"], reg["device_secret"]
        self.state.save(self.state_file)
        self.token = None
        return reg["device_id"]

    def open_session(self) -> None:
        if self.state.device_secret is None:
            self.register()
        body = {"device_id": self.state.device_id, "device_secret": self.state.device_secret}
        r = self._call("POST", "/v1/sessions", body)
        if r.status_code == 401:  # unregistered, or registered again elsewhere
            self.register()
            body = {"device_id": self.state.device_id, "device_secret": self.state.device_secret}
            r = self._call("POST", "/v1/sessions", body)
        if r.status_code != 201:
            raise SdkError(r.status_code, r.json().get("message", r.text))
        self.token = r.json()["session_token"]

    def sync(
        self, *, wait: float = 0, max: int = 100, handle: Callable[[dict], None] | None = None
    ) -> list[dict]:
        """Ack what was handled, then fetch. Each message the app has not seen yet goes
        to `handle` (when given) and is recorded as handled once `handle` returns; if it
        raises, that message and the rest stay unacked and come back. Returns the new
        messages handled this time (without `handle`, returning them is handling)."""
        if not self.online:
            return []
        body = {"ack": self.state.to_ack, "max": max, "wait": wait}
        r = self._call("POST", "/v1/device/sync", body, headers=self._auth(), timeout=wait + 15)
        if r.status_code in (401, 404):  # session expired or device gone: start again
            self.token = None
            if r.status_code == 404:
                self.state.device_secret = None
            r = self._call("POST", "/v1/device/sync", body, headers=self._auth(), timeout=wait + 15)
        if r.status_code != 200:
            raise SdkError(r.status_code, r.json().get("message", r.text))
        self.state.to_ack = []
        fresh = []
        try:
            for m in r.json()["messages"]:
                if m["id"] not in self._seen_set:
                    if handle is not None:
                        handle(m)
                    fresh.append(m)
                    self._remember(m["id"])
                self.state.to_ack.append(m["id"])  # handled now or before: ack it
        finally:
            self.state.save(self.state_file)
        return fresh

    def flush_acks(self) -> None:
        """Ack what was handled without fetching more (before going offline)."""
        if self.state.to_ack:
            self.sync(max=0)

    def device(self) -> dict:
        r = self._call("GET", "/v1/device", headers=self._auth())
        if r.status_code != 200:
            raise SdkError(r.status_code, r.json().get("message", r.text))
        return r.json()

    def unregister(self) -> None:
        r = self._call("DELETE", "/v1/device", headers=self._auth())
        if r.status_code != 204:
            raise SdkError(r.status_code, r.json().get("message", r.text))
        self.state = State()
        self._seen_set.clear()
        self.token = None
        self.state.save(self.state_file)

    def drain(self, *, max: int = 500) -> list[dict]:
        """Catch up: sync until nothing is pending, acking as it goes."""
        got: list[dict] = []
        while True:
            fresh = self.sync(max=max)
            got += fresh
            if not self.state.to_ack:
                return got

    def stream(
        self,
        handle: Callable[[dict], None],
        *,
        window: int = 100,
        until: Callable[[], bool] = lambda: False,
        ack_every_s: float = 0.2,
    ) -> int:
        """Stay on the live stream: each message the app has not seen goes to `handle`
        once (dedupe by id, as sync), and is acked on the socket in batches. Reconnects
        when the stream drops (a dependency down, the network), with a new session
        after 4003 and a new registration after 4004. Returns the close code when this
        device was taken over by a newer stream or sync (4001), or 1000 once `until()`."""
        url = "ws" + self.base.removeprefix("http") + f"/v1/device/stream?window={window}"
        backoff = 0.2
        while not until():
            try:
                ws = websocket.create_connection(
                    url, header=[f"Authorization: {self._auth()['Authorization']}"], timeout=1.0
                )
            except websocket.WebSocketBadStatusException as e:
                if e.status_code not in (401, 503):
                    raise SdkError(e.status_code, str(e)) from None
                self.token = None
                self.sleep(backoff)
                continue
            except (websocket.WebSocketException, OSError):
                self.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            code = self._pump(ws, handle, until, ack_every_s, window)
            if code == 4001:
                return code
            if code in (4003, 4004):
                self.token = None
                if code == 4004:
                    self.state.device_secret = None  # deleted: register again
        return 1000

    def _pump(self, ws, handle, until, ack_every_s: float, window: int) -> int:
        """One stream's life: messages in, acks out; its close code."""
        to_ack: list[str] = []
        acked_at = time.monotonic()

        def flush() -> None:
            nonlocal acked_at
            if to_ack:
                ws.send(json.dumps({"op": "ack", "ids": to_ack}))
                to_ack.clear()
            acked_at = time.monotonic()

        try:
            while not until():
                try:
                    opcode, data = ws.recv_data(control_frame=True)
                except websocket.WebSocketTimeoutException:
                    flush()
                    continue
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                if opcode != websocket.ABNF.OPCODE_TEXT:
                    continue
                m = json.loads(data)
                if m.get("op") != "message":
                    continue
                if m["id"] not in self._seen_set:
                    handle(m)
                    self._remember(m["id"])
                to_ack.append(m["id"])  # handled now or before: ack it
                if len(to_ack) >= window // 2 or time.monotonic() - acked_at >= ack_every_s:
                    flush()
            flush()
            return 1000
        except (websocket.WebSocketException, OSError):
            return 1006  # the connection dropped: what was not acked comes back
        finally:
            self.state.save(self.state_file)
            with contextlib.suppress(websocket.WebSocketException, OSError):
                ws.close()

    def go_offline(self) -> None:
        self.online = False

    def go_online(self) -> None:
        self.online = True

    def _remember(self, message_id: str) -> None:
        if len(self.state.seen) == self.state.seen.maxlen:
            self._seen_set.discard(self.state.seen[0])
        self.state.seen.append(message_id)
        self._seen_set.add(message_id)
