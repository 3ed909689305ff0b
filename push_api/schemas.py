"""Request and response schemas. A request is parsed once, here, into the small values
the services take."""

from __future__ import annotations

import re
from dataclasses import dataclass

import marshmallow as ma
from marshmallow import fields, validate

from device_registry.services import DeviceChanges, RegistrationRequest
from device_registry.store import DEVICE_FIELDS, PROVIDERS, PushToken
from dispatcher.delivery.decisions import Taken
from dispatcher.delivery.sync import SyncRequest
from dispatcher.messages import TTL_MAX_S, Content, Target
from dispatcher.platforms.wake_jobs import WAKE_MODES
from pushbox_core.times import rfc3339

TOPIC = validate.Regexp(r"^[A-Za-z0-9_.~%-]{1,64}$", error="must be 1-64 of A-Z a-z 0-9 _ . ~ % -")
TOPICS_MAX = 100
PLATFORMS = ("ios", "android", "web")


class Rfc3339(fields.DateTime):
    """Naive datetimes are UTC; written as 2026-11-25T04:29:07.123Z."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else rfc3339(value)


def _topics_field() -> fields.List:
    return fields.List(
        fields.String(validate=TOPIC),
        validate=validate.Length(max=TOPICS_MAX, error=f"at most {TOPICS_MAX} topics"),
    )


def _unique(topics: list[str] | None) -> tuple[str, ...] | None:
    return None if topics is None else tuple(dict.fromkeys(topics))


class AppIn(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class AppOut(ma.Schema):
    """A new app (device_registry.services.NewApp): its keys are shown this once."""

    id = fields.String(attribute="app.id")
    name = fields.String(attribute="app.name")
    app_key = fields.String()
    server_key = fields.String()


APNS_TOKEN = re.compile(r"^[0-9a-fA-F]{64,200}$")
FCM_TOKEN = re.compile(r"^[A-Za-z0-9_:.\-]{20,4096}$")


class PushTokenIn(ma.Schema):
    """A platform push token: FCM registration token, or APNs device token (hex)."""

    provider = fields.String(required=True, validate=validate.OneOf(PROVIDERS))
    token = fields.String(required=True)

    @ma.validates_schema
    def token_shape(self, data: dict, **_: object) -> None:
        shape = {"apns": APNS_TOKEN, "fcm": FCM_TOKEN}.get(data.get("provider", ""))
        if shape is not None and not shape.match(data.get("token", "")):
            what = {
                "apns": "an APNs device token is 64 or more hex digits",
                "fcm": "an FCM registration token is 20-4096 of A-Z a-z 0-9 _ : . -",
            }[data["provider"]]
            raise ma.ValidationError(f"not a {data['provider']} token: {what}", "token")

    @ma.post_load
    def to_token(self, data: dict, **_: object) -> PushToken:
        return PushToken(data["provider"], data["token"])


def _push_token_field() -> fields.Nested:
    return fields.Nested(
        PushTokenIn,
        allow_none=True,
        metadata={"description": "the platform token that wakes the app; null removes it"},
    )


def _device_values(data: dict) -> dict:
    """The device fields a request sent (push_token too), for the services."""
    return {f: data[f] for f in (*DEVICE_FIELDS, "push_token") if f in data}


class RegistrationIn(ma.Schema):
    installation_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS))
    user_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=128))
    locale = fields.String(allow_none=True, validate=validate.Length(max=35))
    app_version = fields.String(allow_none=True, validate=validate.Length(max=64))
    topics = _topics_field()
    push_token = _push_token_field()

    @ma.post_load
    def to_request(self, data: dict, **_: object) -> RegistrationRequest:
        values = _device_values(data)
        return RegistrationRequest(data["installation_id"], values, _unique(data.get("topics")))


class RegistrationOut(ma.Schema):
    """A registration (device_registry.services.Registration)."""

    device_id = fields.String(attribute="device.id")
    device_secret = fields.String(attribute="secret")


class SessionIn(ma.Schema):
    device_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    device_secret = fields.String(required=True, validate=validate.Length(min=1, max=200))


class SessionOut(ma.Schema):
    session_token = fields.String()
    expires_in = fields.Integer(metadata={"description": "seconds; each use extends it"})


class DevicePatch(ma.Schema):
    user_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=128))
    topics = _topics_field()
    locale = fields.String(allow_none=True, validate=validate.Length(max=35))
    app_version = fields.String(allow_none=True, validate=validate.Length(max=64))
    push_token = _push_token_field()

    @ma.post_load
    def to_changes(self, data: dict, **_: object) -> DeviceChanges:
        return DeviceChanges(_device_values(data), _unique(data.get("topics")))


class PushOut(ma.Schema):
    """A device's platform token, as the device may see it (never the token itself)."""

    provider = fields.String(attribute="push_provider")
    status = fields.String(attribute="push_status", metadata={"description": "active | invalid"})
    invalid_reason = fields.String(attribute="push_invalid_reason", allow_none=True)


class DeviceOut(ma.Schema):
    """A device as it sees itself (device_registry.services.DeviceView)."""

    device_id = fields.String(attribute="device.id")
    app_id = fields.String(attribute="device.app_id")
    platform = fields.String(attribute="device.platform")
    user_id = fields.String(attribute="device.user_id", allow_none=True)
    locale = fields.String(attribute="device.locale", allow_none=True)
    app_version = fields.String(attribute="device.app_version", allow_none=True)
    topics = fields.List(fields.String(), attribute="device.topics")
    pending = fields.Integer()
    online = fields.Boolean(attribute="presence.online")
    connected = fields.Boolean(
        metadata={"description": "waiting in a sync or streaming, on any instance"}
    )
    last_seen_at = Rfc3339(attribute="presence.last_seen_at", allow_none=True)
    push = fields.Nested(PushOut, attribute="device", allow_none=True)

    @ma.post_dump(pass_original=True)
    def no_token_no_push(self, data: dict, view, **_: object) -> dict:
        if view.device.push_provider is None:
            data["push"] = None
        return data


def _content(data: dict) -> Content:
    return Content(
        title=data.get("title"),
        body=data.get("body"),
        data=data.get("data"),
        ttl_s=data.get("ttl"),
        collapse_key=data.get("collapse_key"),
        priority=data.get("priority"),
        wake=data.get("wake"),
    )


class _ContentFields(ma.Schema):
    title = fields.String(allow_none=True, validate=validate.Length(max=4096))
    body = fields.String(allow_none=True, validate=validate.Length(max=4096))
    data = fields.Dict(keys=fields.String(), allow_none=True)
    ttl = fields.Integer(
        validate=validate.Range(min=1, max=TTL_MAX_S, error=f"must be 1 to {TTL_MAX_S} seconds"),
        metadata={"description": "seconds"},
    )
    collapse_key = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    priority = fields.String(validate=validate.OneOf(("high", "normal")))
    wake = fields.String(
        validate=validate.OneOf(WAKE_MODES),
        metadata={
            "description": "platform push: alert | silent | none (default: alert when"
            " the message has a title or body, else silent)"
        },
    )


class BroadcastIn(_ContentFields):
    @ma.post_load
    def to_content(self, data: dict, **_: object) -> Content:
        return _content(data)


class TargetIn(ma.Schema):
    device_id = fields.String(validate=validate.Length(min=1, max=40))
    user_id = fields.String(validate=validate.Length(min=1, max=128))
    topic = fields.String(validate=TOPIC)

    @ma.validates_schema
    def exactly_one(self, data: dict, **_: object) -> None:
        if len(data) != 1:
            raise ma.ValidationError("must name exactly one of device_id, user_id, topic")

    @ma.post_load
    def to_target(self, data: dict, **_: object) -> Target:
        ((key, value),) = data.items()
        return Target({"device_id": "device", "user_id": "user", "topic": "topic"}[key], value)


@dataclass(frozen=True)
class NotificationRequest:
    target: Target
    content: Content


class NotificationIn(_ContentFields):
    to = fields.Nested(TargetIn, required=True)

    @ma.post_load
    def to_request(self, data: dict, **_: object) -> NotificationRequest:
        return NotificationRequest(data["to"], _content(data))


class SentOut(ma.Schema):
    id = fields.String()
    targets = fields.Integer(metadata={"description": "active devices at send time"})


class NotificationOut(ma.Schema):
    id = fields.String()
    kind = fields.String()
    created_at = Rfc3339()
    expires_at = Rfc3339()
    priority = fields.String()
    targets = fields.Integer()
    acked = fields.Integer()
    expired = fields.Integer()
    dropped = fields.Integer()
    collapsed = fields.Integer(metadata={"description": "older messages of one collapse_key"})
    woken = fields.Integer(metadata={"description": "platform pushes FCM or APNs accepted"})
    wake_failed = fields.Integer(
        metadata={"description": "platform pushes refused for good (dead token, credentials)"}
    )


SYNC_MAX = 500
SYNC_WAIT_MAX_S = 30
ACKS_MAX = 1000
MESSAGE_ID_MAX_CHARS = 64


class MessageIds(fields.List):
    """A list of message ids. A sync acks up to 1,000 at a time: a list where every id
    is fine is taken in one pass; otherwise item by item, naming the bad ones."""

    def __init__(self, **kwargs):
        super().__init__(
            fields.String(validate=validate.Length(min=1, max=MESSAGE_ID_MAX_CHARS)), **kwargs
        )

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list) and all(
            type(v) is str and 0 < len(v) <= MESSAGE_ID_MAX_CHARS for v in value
        ):
            return list(value)
        return super()._deserialize(value, attr, data, **kwargs)


class SyncIn(ma.Schema):
    ack = MessageIds(
        load_default=list,
        validate=validate.Length(max=ACKS_MAX, error=f"at most {ACKS_MAX} ids"),
    )
    max = fields.Integer(load_default=100, validate=validate.Range(min=0, max=SYNC_MAX))
    wait = fields.Float(
        load_default=0,
        validate=validate.Range(min=0, max=SYNC_WAIT_MAX_S),
        metadata={"description": "seconds to hold the request when nothing is pending"},
    )

    @ma.post_load
    def to_request(self, data: dict, **_: object) -> SyncRequest:
        return SyncRequest(tuple(data["ack"]), data["max"], data["wait"])


class MessageOut(ma.Schema):
    id = fields.String()
    kind = fields.String(metadata={"description": "broadcast | notification"})
    priority = fields.String(metadata={"description": "high | normal"})
    title = fields.String(allow_none=True)
    body = fields.String(allow_none=True)
    data = fields.Dict(allow_none=True)
    collapse_key = fields.String(allow_none=True)
    created_at = fields.String()
    expires_at = fields.String()
    redelivered = fields.Boolean()


class SyncOut(ma.Schema):
    messages = fields.List(fields.Nested(MessageOut))


def sync_answer(messages: list[Taken]) -> bytes:
    """SyncOut's JSON, written without decoding the stored messages: each is the JSON
    built by dispatcher.messages with `redelivered` spliced in. A test holds real
    answers against SyncOut as /openapi.json serves it (tests/test_openapi.py)."""
    return b'{"messages":[' + b",".join(m.wire() for m in messages) + b"]}"


class AppSettingsIn(ma.Schema):
    marketing_cap_per_day = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=0, max=1_000_000),
        metadata={
            "description": "normal-priority campaign and broadcast messages a device"
            " gets a day (UTC); null: no cap"
        },
    )
    push_content = fields.String(
        validate=validate.OneOf(("inline", "private")),
        metadata={"description": "private: platform alerts carry a generic text and the id"},
    )


class AppPatch(ma.Schema):
    settings = fields.Nested(AppSettingsIn, required=True)


class FcmCredentialsIn(ma.Schema):
    service_account = fields.Dict(
        required=True, metadata={"description": "the JSON key file Google issues"}
    )


class ApnsCredentialsIn(ma.Schema):
    team_id = fields.String(required=True)
    key_id = fields.String(required=True)
    bundle_id = fields.String(required=True)
    private_key = fields.String(required=True, metadata={"description": "the .p8 key (PEM)"})
    environment = fields.String(required=True, validate=validate.OneOf(("production", "sandbox")))


class _CredentialState(ma.Schema):
    status = fields.String(metadata={"description": "active | rejected (by Google or Apple)"})
    rejected_reason = fields.String(allow_none=True)


class FcmCredentialsOut(_CredentialState):
    project_id = fields.String(attribute="public.project_id")


class ApnsCredentialsOut(_CredentialState):
    team_id = fields.String(attribute="public.team_id")
    key_id = fields.String(attribute="public.key_id")
    bundle_id = fields.String(attribute="public.bundle_id")
    environment = fields.String(attribute="public.environment")


class AppCredentialsOut(ma.Schema):
    fcm = fields.Nested(FcmCredentialsOut, allow_none=True, dump_default=None)
    apns = fields.Nested(ApnsCredentialsOut, allow_none=True, dump_default=None)


class AppSettingsOut(ma.Schema):
    marketing_cap_per_day = fields.Integer(allow_none=True)
    push_content = fields.String()


class AppViewOut(ma.Schema):
    """The calling app (dispatcher.platforms.credentials.AppView): never a private key."""

    id = fields.String(attribute="app.id")
    name = fields.String(attribute="app.name")
    settings = fields.Nested(AppSettingsOut, attribute="app")
    credentials = fields.Nested(AppCredentialsOut)
