"""Schemas of campaigns and batches (DESIGN "Campaigns and bulk sends"). A request is
parsed once, here, into the values dispatcher.campaigns and dispatcher.batch take."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import cast

import marshmallow as ma
from marshmallow import fields, validate

from dispatcher.batch import BATCH_MAX, Item
from dispatcher.campaigns.audience import Audience
from dispatcher.campaigns.services import LIST_LIMIT_MAX, CampaignRequest
from dispatcher.campaigns.store import STATUSES
from dispatcher.messages import TTL_MAX_S, Content, Target
from dispatcher.platforms.wake_jobs import WAKE_MODES
from push_api.schemas import (
    PLATFORMS,
    TOPIC,
    NotificationIn,
    NotificationRequest,
    Rfc3339,
    _content,
    _ContentFields,
)
from pushbox_core.errors import InvalidRequest

SEND_AHEAD_MAX = timedelta(days=30)
SEND_LATE_MAX = timedelta(seconds=60)
LIST_VALUES_MAX = 100
USER_IDS_MAX = 1_000
SEEN_WITHIN_MAX_S = 400 * 86_400


def _values(inner: fields.Field, most: int) -> fields.List:
    return fields.List(
        inner, validate=validate.Length(min=1, max=most, error=f"1 to {most} values")
    )


class AudienceIn(ma.Schema):
    """Conditions ANDed, the values of one list ORed; none: every active device. An
    unknown condition is refused (422 naming it)."""

    platforms = _values(fields.String(validate=validate.OneOf(PLATFORMS)), len(PLATFORMS))
    locales = _values(
        fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,35}$", error="not a locale tag")),
        LIST_VALUES_MAX,
    )
    app_versions = _values(fields.String(validate=validate.Length(min=1, max=64)), LIST_VALUES_MAX)
    min_app_version = fields.String(
        validate=validate.Regexp(r"^\d{1,9}(\.\d{1,9}){0,3}$", error="dotted numbers: 4.2.1"),
        metadata={"description": "compared as dotted numbers: 4.10 > 4.9"},
    )
    topics = _values(fields.String(validate=TOPIC), LIST_VALUES_MAX)
    user_ids = _values(fields.String(validate=validate.Length(min=1, max=128)), USER_IDS_MAX)
    seen_within_s = fields.Integer(
        validate=validate.Range(min=1, max=SEEN_WITHIN_MAX_S),
        metadata={"description": "devices active within this many seconds"},
    )

    @ma.post_load
    def to_audience(self, data: dict, **_: object) -> Audience:
        return Audience.from_json(
            {k: list(dict.fromkeys(v)) if isinstance(v, list) else v for k, v in data.items()}
        )


def _send_at_in_range(at: datetime) -> None:
    now = datetime.now(UTC)
    if at > now + SEND_AHEAD_MAX:
        raise ma.ValidationError("must be at most 30 days ahead")
    if at < now - SEND_LATE_MAX:
        raise ma.ValidationError("must not be more than 60 seconds in the past")


class CampaignIn(_ContentFields):
    audience = fields.Nested(AudienceIn, load_default=Audience)
    send_at = fields.AwareDateTime(
        default_timezone=UTC,
        validate=_send_at_in_range,
        metadata={"description": "RFC 3339; at most 30 days ahead; absent: now"},
    )

    @ma.validates_schema
    def has_something_to_say(self, data: dict, **_: object) -> None:
        if not (data.get("title") or data.get("body") or data.get("data")):
            why = "a campaign needs a title, a body or data"
            raise ma.ValidationError({"title": [why], "body": [why], "data": [why]})

    @ma.post_load
    def to_request(self, data: dict, **_: object) -> CampaignRequest:
        at = data.get("send_at")
        return CampaignRequest(
            data["audience"],
            _content(data),
            at.astimezone(UTC).replace(tzinfo=None) if at is not None else None,
        )


class CampaignCreatedOut(ma.Schema):
    id = fields.String()
    status = fields.String(metadata={"description": "scheduled | queued"})


class AudienceOut(ma.Schema):
    platforms = fields.List(fields.String())
    locales = fields.List(fields.String())
    app_versions = fields.List(fields.String())
    min_app_version = fields.String(allow_none=True)
    topics = fields.List(fields.String())
    user_ids = fields.List(fields.String())
    seen_within_s = fields.Integer(allow_none=True)


class CampaignOut(ma.Schema):
    id = fields.String()
    status = fields.String(
        metadata={"description": "scheduled | queued | running | done | cancelled | failed"}
    )
    priority = fields.String()
    audience = fields.Nested(AudienceOut)
    send_at = Rfc3339()
    created_at = Rfc3339()
    started_at = Rfc3339(allow_none=True)
    finished_at = Rfc3339(allow_none=True)
    targets = fields.Integer(
        allow_none=True, metadata={"description": "devices in the audience when it started"}
    )
    published = fields.Integer(metadata={"description": "devices it was published to"})
    capped = fields.Integer(metadata={"description": "devices skipped: marketing_cap_per_day"})
    acked = fields.Integer()
    expired = fields.Integer()
    dropped = fields.Integer()
    woken = fields.Integer(metadata={"description": "platform pushes FCM or APNs accepted"})
    error = fields.String(allow_none=True)


class CampaignListArgs(ma.Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=LIST_LIMIT_MAX))
    cursor = fields.String(validate=validate.Length(min=1, max=40))


class CampaignListOut(ma.Schema):
    campaigns = fields.List(fields.Nested(CampaignOut))
    next_cursor = fields.String(allow_none=True, metadata={"description": "null: no more"})


class BatchItems(fields.List):
    """Each item parsed on its own: one that does not parse is that item's error, not
    the request's."""

    def __init__(self, **kwargs):
        super().__init__(fields.Dict(), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ma.ValidationError("must be a list of notifications")
        return list(value)


_NOTIFICATION = NotificationIn()  # made once: making a schema costs more than a load
_CONTENT_KEYS = frozenset({"title", "body", "data", "ttl", "collapse_key", "priority", "wake"})
_TARGETS = {"device_id": ("device", 40), "user_id": ("user", 128), "topic": ("topic", 64)}
TEXT_MAX = 4096
_TOPIC = cast("re.Pattern[str]", TOPIC.regex)


def _fine_text(value: object, most: int) -> bool:
    return value is None or (type(value) is str and len(value) <= most)


def plain_item(raw: dict) -> Item | None:
    """The common item, taken without marshmallow (a schema load is most of what a
    batch costs the API) when every field is plainly within NotificationIn's rules;
    None for anything else, which NotificationIn then judges (and words the error of).
    It accepts a subset of what NotificationIn accepts, with the same result
    (tests/test_batch_parsing.py holds it to that)."""
    if not raw.keys() <= _CONTENT_KEYS | {"to"}:
        return None
    to = raw.get("to")
    if type(to) is not dict or len(to) != 1:
        return None
    ((key, value),) = to.items()
    kind, most = _TARGETS.get(key, ("", 0))
    if type(value) is not str or not 0 < len(value) <= most:
        return None
    if kind == "topic" and not _TOPIC.match(value):
        return None
    title, body, data = raw.get("title"), raw.get("body"), raw.get("data")
    if not (_fine_text(title, TEXT_MAX) and _fine_text(body, TEXT_MAX)):
        return None
    if data is not None and (type(data) is not dict or any(type(k) is not str for k in data)):
        return None
    ttl = raw.get("ttl")
    if "ttl" in raw and not (type(ttl) is int and 1 <= ttl <= TTL_MAX_S):
        return None
    collapse_key = raw.get("collapse_key")
    if collapse_key == "" or not _fine_text(collapse_key, 64):
        return None
    priority, wake = raw.get("priority"), raw.get("wake")
    if ("priority" in raw and priority not in ("high", "normal")) or (
        "wake" in raw and wake not in WAKE_MODES
    ):
        return None
    return Item(
        Target(kind, value),
        Content(
            title=title,
            body=body,
            data=data,
            ttl_s=ttl,
            collapse_key=collapse_key,
            priority=priority,
            wake=wake,
        ),
    )


def _item(raw: dict) -> Item | InvalidRequest:
    from push_api.errors import describe  # the same words as a request's own 422

    plain = plain_item(raw)
    if plain is not None:
        return plain
    try:
        req: NotificationRequest = _NOTIFICATION.load(raw)
    except ma.ValidationError as e:
        return InvalidRequest("invalid notification: " + "; ".join(describe(e.messages)))
    return Item(req.target, req.content)


class BatchIn(ma.Schema):
    notifications = BatchItems(
        required=True,
        validate=validate.Length(min=1, max=BATCH_MAX, error=f"1 to {BATCH_MAX} notifications"),
        metadata={"description": "bodies of POST /v1/notifications, each standing alone"},
    )

    @ma.post_load
    def to_items(self, data: dict, **_: object) -> list[Item | InvalidRequest]:
        return [
            _item(raw) if isinstance(raw, dict) else InvalidRequest("not a notification object")
            for raw in data["notifications"]
        ]


class ItemErrorOut(ma.Schema):
    code = fields.Integer()
    status = fields.String()
    error = fields.String(metadata={"description": "a stable name, as in error bodies"})
    message = fields.String()
    id = fields.String(metadata={"description": "delivery_unknown: the notification's id"})


class BatchResultOut(ma.Schema):
    id = fields.String()
    targets = fields.Integer()
    error = fields.Nested(ItemErrorOut)


class BatchOut(ma.Schema):
    results = fields.List(fields.Nested(BatchResultOut))
