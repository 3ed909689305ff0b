"""Pure logic: building a message, its size rule, defaults and wire format."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from dispatcher.messages import PAYLOAD_MAX_BYTES, Content, build
from pushbox_core.errors import PayloadTooLarge

NOW = datetime(2026, 11, 25, 4, 29, 7, 123456)


def test_defaults_follow_the_contract():
    broadcast = build("broadcast", Content(title="t"), now=NOW)
    notification = build("notification", Content(title="t"), now=NOW)
    assert (broadcast.priority, broadcast.ttl_s) == ("normal", 3 * 86_400)
    assert (notification.priority, notification.ttl_s) == ("high", 28 * 86_400)


def test_wire_format_and_headers_agree():
    m = build(
        "notification", Content(title="t", data={"k": 1}, ttl_s=60, collapse_key="c"), now=NOW
    )
    wire = json.loads(m.encode())
    assert wire["created_at"] == "2026-11-25T04:29:07.123Z"
    assert wire["expires_at"] == "2026-11-25T04:30:07.123Z"
    assert wire["data"] == {"k": 1} and wire["collapse_key"] == "c"
    headers = m.headers()
    assert headers["expires_ms"] - headers["created_ms"] == 60_000
    assert headers["collapse_key"] == "c"


def test_payload_limit_counts_encoded_bytes():
    fits = "é" * ((PAYLOAD_MAX_BYTES - 40) // 2)  # two bytes each in UTF-8
    build("broadcast", Content(body=fits))
    with pytest.raises(PayloadTooLarge, match="bytes"):
        build("broadcast", Content(body=fits, title="x" * 100))
