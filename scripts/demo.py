"""`make demo`: the Pushbox story against the running stack, told by phones.

Three phones register, a promo is broadcast, an order update goes to one user, one
phone is offline while promos and an order update pile up, then it comes back and
drains them in order: the order update first, then the promos as they were sent.
Then a phone whose app is closed is woken through APNs (a local stand-in that speaks
Apple's protocol, tests/standins: the demo restarts the stack pointed at it, and puts
it back as it was at the end), and syncs when woken."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import requests

from sdk_stub import Phone

ROOT = Path(__file__).resolve().parent.parent
BASE = os.environ.get("PUSH_URL", "http://127.0.0.1:8080")


def admin_token() -> str:
    token = os.environ.get("PUSH_ADMIN_TOKEN")
    return token or (ROOT / ".run" / "admin-token").read_text().strip()


def show(name: str, messages: list[dict]) -> None:
    if not messages:
        print(f"  {name:6} (nothing new)")
    for m in messages:
        tag = "ORDER" if m["priority"] == "high" else "promo"
        print(f"  {name:6} {tag}  {m['title']}")


def main() -> int:
    http = requests.Session()
    r = http.post(
        f"{BASE}/v1/apps",
        json={"name": f"demo shop {uuid.uuid4().hex[:6]}"},
        headers={"Authorization": f"Bearer {admin_token()}"},
    )
    r.raise_for_status()
    shop = r.json()
    send = {"Authorization": f"Bearer {shop['server_key']}"}
    print(f"app {shop['id']} created; three phones register")
    phones = {
        name: Phone(BASE, shop["app_key"], user_id=name, topics=["deals"])
        for name in ("alice", "bob", "carol")
    }
    for name, phone in phones.items():
        phone.open_session()
        print(f"  {name:6} is device {phone.device_id}")

    def sync_all(names) -> None:
        for name in names:
            show(name, phones[name].sync(wait=2))

    print("\n1. a promo is broadcast to every phone")
    http.post(f"{BASE}/v1/broadcasts", json={"title": "Black Friday: 30% off"}, headers=send)
    sync_all(phones)

    print("\n2. an order update goes to bob only")
    http.post(
        f"{BASE}/v1/notifications",
        headers=send,
        json={
            "to": {"user_id": "bob"},
            "title": "Order #1001 shipped",
            "data": {"order_id": "1001", "status": "shipped"},
        },
    )
    sync_all(phones)

    print("\n3. carol goes offline; two promos and an order update for her pile up")
    phones["carol"].flush_acks()
    phones["carol"].go_offline()
    http.post(f"{BASE}/v1/broadcasts", json={"title": "Cyber Monday preview"}, headers=send)
    http.post(f"{BASE}/v1/broadcasts", json={"title": "Free shipping today"}, headers=send)
    http.post(
        f"{BASE}/v1/notifications",
        headers=send,
        json={"to": {"user_id": "carol"}, "title": "Order #2002 out for delivery"},
    )
    sync_all(["alice", "bob"])
    print(f"  carol  offline, {phones['carol'].device()['pending']} messages waiting for her")

    print("\n4. carol comes back and catches up in one drain: order update first")
    phones["carol"].go_online()
    show("carol", phones["carol"].drain())
    for phone in phones.values():
        phone.flush_acks()
    print("\ndone: every phone saw each message once, in priority then send order")
    chat(http, shop)
    with local_apns() as apns:
        wake_a_closed_app(http, apns)
    return 0


def chat(http: requests.Session, shop: dict) -> None:
    """Two phones on the live stream: each message shows the moment it lands."""
    send = {"Authorization": f"Bearer {shop['server_key']}"}
    phones = {name: Phone(BASE, shop["app_key"], user_id=f"chat-{name}") for name in ("ann", "ben")}
    stop = threading.Event()
    sent_at: dict[str, float] = {}

    def listen(name: str, phone: Phone) -> None:
        def show_line(m: dict) -> None:
            ms = (time.monotonic() - sent_at.get(m["id"], time.monotonic())) * 1000
            print(f"  {name:4} sees  {m['body']!r:28} ({ms:.0f} ms after the send)", flush=True)

        phone.stream(show_line, until=stop.is_set)

    for phone in phones.values():
        phone.open_session()
    threads = [threading.Thread(target=listen, args=item, daemon=True) for item in phones.items()]
    print("\n5. ann and ben open the live stream (a WebSocket) and chat through the backend")
    for t in threads:
        t.start()
    time.sleep(0.5)  # let both streams open
    script = [
        ("ann", "ben", "lunch at noon?"),
        ("ben", "ann", "sure, the usual place"),
        ("ann", "ben", "see you there"),
    ]
    for author, to, text in script:
        r = http.post(
            f"{BASE}/v1/notifications",
            headers=send,
            json={"to": {"user_id": f"chat-{to}"}, "body": f"{author}: {text}", "wake": "none"},
        )
        sent_at[r.json()["id"]] = time.monotonic()
        time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(5)


class Standin:
    """A stand-in of APNs in its own process; what it received, over HTTP/2."""

    def __init__(self, info: dict, proc: subprocess.Popen):
        self.info, self.proc = info, proc
        self.http = httpx.Client(
            http2=True, verify=ssl.create_default_context(cafile=info["ca_file"])
        )

    def pushes(self) -> list[dict]:
        got = self.http.get(f"{self.info['url']}/_standin/requests", timeout=5).json()
        return [r for r in got if r["path"].startswith("/3/device/")]


@contextlib.contextmanager
def local_apns():
    """The APNs stand-in, and the stack restarted to push to it (trusting its CA)."""
    folder = ROOT / ".run" / "demo-apns"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.standins", "apns", "--dir", str(folder)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        pointed = {
            "PUSH_APNS_URL": info["url"],
            "PUSH_APNS_SANDBOX_URL": info["url"],
            "PUSH_CA_FILE": info["ca_file"],
        }
        print(f"\n(restarting the stack with APNs at the local stand-in {info['url']})")
        restart_stack(pointed)
        try:
            yield Standin(info, proc)
        finally:
            print("(restarting the stack as it was)")
            restart_stack({})
    finally:
        proc.terminate()
        proc.wait(10)


def restart_stack(extra: dict[str, str]) -> None:
    python = str(ROOT / ".venv" / "bin" / "python")
    for command, env in (("down", os.environ), ("up", {**os.environ, **extra})):
        subprocess.run(
            [python, "-m", "scripts.stack", command],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def wake_a_closed_app(http: requests.Session, apns: Standin) -> None:
    r = http.post(
        f"{BASE}/v1/apps",
        json={"name": "demo wakes"},
        headers={"Authorization": f"Bearer {admin_token()}"},
    )
    r.raise_for_status()
    shop = r.json()
    send = {"Authorization": f"Bearer {shop['server_key']}"}
    creds = {k: apns.info[k] for k in ("team_id", "key_id", "bundle_id", "environment")}
    creds["private_key"] = Path(apns.info["private_key_file"]).read_text()
    http.put(f"{BASE}/v1/app/credentials/apns", json=creds, headers=send).raise_for_status()
    token = secrets.token_hex(32)
    dave = Phone(
        BASE,
        shop["app_key"],
        platform="ios",
        user_id="dave",
        push_token={"provider": "apns", "token": token},
    )
    dave.open_session()
    print(
        f"\n6. dave's iPhone (device {dave.device_id}) registers its APNs token, then he"
        " closes the app"
    )
    http.post(f"{BASE}/v1/broadcasts", json={"title": "Flash sale: 2 hours"}, headers=send)
    http.post(
        f"{BASE}/v1/notifications",
        headers=send,
        json={"to": {"user_id": "dave"}, "title": "Order #3003 delivered"},
    )
    deadline = time.monotonic() + 10
    while len(apns.pushes()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    for push in apns.pushes():
        body = json.loads(push["body"])
        headers = push["headers"]
        print(
            f"  APNs got: {headers['apns-push-type']}, priority {headers['apns-priority']},"
            f' "{body["aps"]["alert"]["title"]}", pushbox id {body["pushbox"]["id"][:8]}...'
        )
    print("  dave taps the notification: the app wakes and syncs")
    show("dave", dave.sync())
    dave.flush_acks()


if __name__ == "__main__":
    sys.exit(main())
