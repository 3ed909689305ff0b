"""What goes on the wire to FCM and APNs for one `Push`. Pure functions, no I/O.

- alert: FCM `notification {title, body}`, android priority HIGH, `android.collapse_key`;
  APNs push type `alert`, priority 10, `aps.alert {title, body}`, `apns-collapse-id`.
- silent: FCM data only, priority NORMAL; APNs push type `background`, priority 5,
  `aps.content-available: 1`. A silent push only asks the app to sync (several messages
  may stand behind one: wakes are coalesced), so it carries the id and kind, no content.
- private (`push_content: private`): an alert shows PRIVATE_TITLE and carries the id;
  APNs adds `mutable-content: 1`. No title, body, data or collapse key leaves the server.
- Every push carries the id and kind: FCM data keys `pushbox_id`, `pushbox_kind`; APNs a
  top-level `pushbox: {id, kind}` beside `aps`.
- The message's own `data` rides along on alerts: FCM data values must be strings, so it
  goes as one JSON string under `pushbox_data` (no clash with FCM's reserved keys, types
  kept); APNs carries it as a top-level `data` object.
- Both platforms take 4096 bytes of payload. A push that would be larger drops `data`
  first, then shortens the body, then the title (ending in "…"): the app gets the whole
  message when it syncs, as it always does.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable

from dispatcher.platforms.push import Push

PAYLOAD_MAX_BYTES = 4096
PRIVATE_TITLE = "New message"
COLLAPSE_ID_MAX_BYTES = 64
FCM_DATA_KEY = "pushbox_data"
FCM_TTL_MAX_S = 2_419_200  # four weeks: FCM refuses more
ELLIPSIS = "…"

Content = tuple[str | None, str | None, dict | None]


def to_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def collapse_id(key: str) -> str:
    """APNs takes at most 64 bytes: a longer key becomes its SHA-256 (64 hex digits),
    which keeps distinct keys distinct."""
    raw = key.encode()
    return key if len(raw) <= COLLAPSE_ID_MAX_BYTES else hashlib.sha256(raw).hexdigest()


def apns_id(message_id: str) -> str | None:
    """The message id as APNs' canonical UUID, when it is one (Pushbox ids are uuid4
    hex); else None and APNs picks its own."""
    try:
        return str(uuid.UUID(message_id))
    except ValueError:
        return None


def _shown(push: Push) -> tuple[str | None, str | None, dict | None, str | None]:
    """title, body, data, collapse key as they may leave the server."""
    if push.mode == "silent":
        return None, None, None, None
    if push.private:
        return PRIVATE_TITLE, None, None, None
    title, body = push.title or None, push.body or None
    if title is None and body is None:
        title = PRIVATE_TITLE  # an alert must show something
    return title, body, push.data or None, push.collapse_key or None


def _shorten(text: str, over: int) -> str | None:
    raw = text.encode()
    keep = max(0, len(raw) - over - len(ELLIPSIS.encode()))
    cut = raw[:keep].decode(errors="ignore")
    return cut + ELLIPSIS if cut else None


def fit(measure: Callable[[Content], int], content: Content) -> Content:
    """Drop data, then shorten body, then title, until `measure` says it fits."""
    if measure(content) <= PAYLOAD_MAX_BYTES:
        return content
    title, body, _ = content
    while (over := measure((title, body, None)) - PAYLOAD_MAX_BYTES) > 0:
        if body:
            body = _shorten(body, over)
        elif title:
            title = _shorten(title, over)
        else:
            break  # nothing left to cut: ids alone cannot be this large
    return title, body, None


# ---- FCM HTTP v1 ------------------------------------------------------------------


def fcm_message(push: Push) -> dict:
    """The `message` object of `POST /v1/projects/<id>/messages:send`."""
    title, body, data, collapse = _shown(push)

    def build(content: Content) -> dict:
        t, b, d = content
        message: dict = {"token": push.token}
        if push.mode == "alert":
            message["notification"] = {k: v for k, v in (("title", t), ("body", b)) if v}
        fields = {"pushbox_id": push.message_id, "pushbox_kind": push.message_kind}
        if d:
            fields[FCM_DATA_KEY] = to_json(d)
        message["data"] = fields
        android: dict = {"priority": "HIGH" if push.mode == "alert" else "NORMAL"}
        if collapse:
            android["collapse_key"] = collapse
        if push.ttl_s is not None:
            android["ttl"] = f"{min(FCM_TTL_MAX_S, max(0, int(push.ttl_s)))}s"
        message["android"] = android
        return message

    def measure(content: Content) -> int:
        m = build(content)
        return len(to_json([m.get("notification"), m["data"]]).encode())

    return build(fit(measure, (title, body, data)))


def fcm_body(push: Push) -> bytes:
    return to_json({"message": fcm_message(push)}).encode()


# ---- APNs -------------------------------------------------------------------------


def apns_payload(push: Push) -> bytes:
    title, body, data, _ = _shown(push)
    ids = {"id": push.message_id, "kind": push.message_kind}

    def build(content: Content) -> bytes:
        t, b, d = content
        aps: dict
        if push.mode == "silent":
            aps = {"content-available": 1}
        else:
            aps = {"alert": {k: v for k, v in (("title", t), ("body", b)) if v}}
            if push.private:
                aps["mutable-content"] = 1
        payload: dict = {"aps": aps, "pushbox": ids}
        if d:
            payload["data"] = d
        return to_json(payload).encode()

    return build(fit(lambda c: len(build(c)), (title, body, data)))


def apns_headers(push: Push, *, topic: str, now_s: float) -> dict[str, str]:
    """Every header but authorization."""
    alert = push.mode == "alert"
    headers = {
        "apns-topic": topic,
        "apns-push-type": "alert" if alert else "background",
        "apns-priority": "10" if alert else "5",
    }
    if push.ttl_s is not None:
        # 0: deliver now or never, as FCM's "0s"
        ttl = max(0, int(push.ttl_s))
        headers["apns-expiration"] = str(int(now_s) + ttl if ttl else 0)
    collapse = _shown(push)[3]
    if alert and collapse:
        headers["apns-collapse-id"] = collapse_id(collapse)
    if (apns_uuid := apns_id(push.message_id)) is not None:
        headers["apns-id"] = apns_uuid
    return headers


__all__ = [
    "COLLAPSE_ID_MAX_BYTES",
    "FCM_DATA_KEY",
    "PAYLOAD_MAX_BYTES",
    "PRIVATE_TITLE",
    "apns_headers",
    "apns_id",
    "apns_payload",
    "collapse_id",
    "fcm_body",
    "fcm_message",
]
