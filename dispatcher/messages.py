"""A message as it travels: built once from a send request, encoded once.

Pure logic, no I/O: ids, expiry, the payload size rule and the wire format."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pushbox_core.errors import InvalidRequest, PayloadTooLarge
from pushbox_core.times import rfc3339

PAYLOAD_MAX_BYTES = 4096
TTL_MAX_S = 2_419_200  # 28 days
DEFAULT_TTL_S = {"broadcast": 3 * 86_400, "notification": TTL_MAX_S}
DEFAULT_PRIORITY = {"broadcast": "normal", "notification": "high"}


@dataclass(frozen=True)
class Content:
    """What a sender asked to send."""

    title: str | None = None
    body: str | None = None
    data: dict | None = None
    ttl_s: int | None = None
    collapse_key: str | None = None
    priority: str | None = None
    wake: str | None = None  # alert | silent | none; None: alert if it has title or body


@dataclass(frozen=True)
class Target:
    kind: str  # app | device | user | topic
    value: str | None = None


@dataclass(frozen=True)
class Message:
    id: str
    kind: str  # broadcast | notification
    priority: str
    title: str | None
    body: str | None
    data: dict | None
    collapse_key: str | None
    created_at: datetime
    ttl_s: int

    @property
    def expires_at(self) -> datetime:
        return self.created_at + timedelta(seconds=self.ttl_s)

    def wire(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "priority": self.priority,
            "title": self.title,
            "body": self.body,
            "data": self.data,
            "collapse_key": self.collapse_key,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
        }

    def headers(self) -> dict:
        """What sync needs to know without decoding the body."""
        created_ms = int(self.created_at.replace(tzinfo=UTC).timestamp() * 1000)
        headers: dict[str, object] = {
            "created_ms": created_ms,
            "expires_ms": created_ms + self.ttl_s * 1000,
        }
        if self.collapse_key:
            headers["collapse_key"] = self.collapse_key
        return headers

    def encode(self) -> bytes:
        return json.dumps(self.wire(), separators=(",", ":")).encode()


def payload_bytes(content: Content) -> int:
    """The size of title, body and data in UTF-8 JSON. JSON may carry text UTF-8 can't
    hold (a lone surrogate escaped as \\ud800): InvalidRequest, naming the field."""
    fields = {"title": content.title, "body": content.body, "data": content.data}
    try:
        return len(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())
    except UnicodeEncodeError:
        for name, value in fields.items():
            if not _utf8(value):
                raise InvalidRequest(
                    f"{name}: not valid Unicode text (a lone surrogate)", field=name
                ) from None
        raise


def _utf8(value: object) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
        return True
    except UnicodeEncodeError:
        return False


def build(
    kind: str, content: Content, *, message_id: str | None = None, now: datetime | None = None
) -> Message:
    size = payload_bytes(content)
    if size > PAYLOAD_MAX_BYTES:
        raise PayloadTooLarge(
            f"title + body + data encode to {size} bytes; at most {PAYLOAD_MAX_BYTES}"
        )
    created = (now or datetime.now(UTC)).replace(tzinfo=None)
    # a millisecond clock: what the wire says is what MySQL and expiry use
    created = created.replace(microsecond=created.microsecond // 1000 * 1000)
    return Message(
        id=message_id or uuid.uuid4().hex,
        kind=kind,
        priority=content.priority or DEFAULT_PRIORITY[kind],
        title=content.title,
        body=content.body,
        data=content.data,
        collapse_key=content.collapse_key,
        created_at=created,
        ttl_s=content.ttl_s or DEFAULT_TTL_S[kind],
    )
