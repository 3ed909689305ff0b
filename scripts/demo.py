"""`make demo`: the Pushbox story against the running stack, told by three phones.

Three phones register, a promo is broadcast, an order update goes to one user, one
phone is offline while promos and an order update pile up, then it comes back and
drains them in order: the order update first, then the promos as they were sent."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
