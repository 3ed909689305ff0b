"""Order events from other services, turned into notifications (pure parsing here).

An event, on the orders exchange with routing key `order.<status>`:
`{app_id, user_id, order_id, status, title?, body?}`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from dispatcher.messages import Content, Target

TEXT_MAX = 1024


class MalformedEvent(ValueError):
    pass


@dataclass(frozen=True)
class OrderEvent:
    app_id: str
    user_id: str
    order_id: str
    status: str
    title: str | None
    body: str | None

    @property
    def message_id(self) -> str:
        """The same event redelivered is the same notification: sent once."""
        key = json.dumps([self.app_id, self.user_id, self.order_id, self.status])
        return "ord_" + hashlib.sha256(key.encode()).hexdigest()[:32]

    def target(self) -> Target:
        return Target("user", self.user_id)

    def content(self) -> Content:
        return Content(
            title=self.title or f"Order {self.order_id}",
            body=self.body or f"Your order is now {self.status.replace('_', ' ')}.",
            data={"order_id": self.order_id, "status": self.status},
            priority="high",
        )


def parse(body: bytes) -> OrderEvent:
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MalformedEvent(f"not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise MalformedEvent("not a JSON object")
    values: dict[str, str | None] = {}
    for name in ("app_id", "user_id", "order_id", "status"):
        value = raw.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value or len(value) > 128:
            raise MalformedEvent(f"{name} must be a non-empty string of at most 128 characters")
        values[name] = value
    for name in ("title", "body"):
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > TEXT_MAX):
            raise MalformedEvent(f"{name} must be a string of at most {TEXT_MAX} characters")
        values[name] = value
    return OrderEvent(**values)  # type: ignore[arg-type]
