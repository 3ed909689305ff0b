"""Device endpoints: register, open a session, read, change and remove the device."""

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from device_registry import services
from device_registry.services import DeviceChanges, DeviceView, RegistrationRequest, SyncRequest
from push_api.auth import require_session
from push_api.deps import deps
from push_api.rate_limits import Limit
from push_api.schemas import (
    DeviceOut,
    DevicePatch,
    RegistrationIn,
    RegistrationOut,
    SessionIn,
    SessionOut,
    SyncIn,
    SyncOut,
)

blp = Blueprint("devices", __name__, url_prefix="/v1", description="Devices")


def _address_limit(kind: str) -> None:
    """Calls made without credentials are limited by client address (the registration
    limit: many phones may share a carrier's address)."""
    s = deps().settings
    limit = Limit(kind, s.rate_registration_per_s, s.rate_registration_burst)
    deps().limiter.check(limit, request.remote_addr or "unknown")


def _device_limit(device_id: str) -> None:
    s = deps().settings
    deps().limiter.check(Limit("device", s.rate_device_per_s, s.rate_device_burst), device_id)


def device_out(view: DeviceView) -> dict:
    d = view.device
    return {
        "device_id": d.id,
        "app_id": d.app_id,
        "platform": d.platform,
        "user_id": d.user_id,
        "locale": d.locale,
        "app_version": d.app_version,
        "topics": list(d.topics),
        "pending": view.pending,
        "online": view.presence.online,
        "last_seen_at": view.presence.last_seen_at,
    }


@blp.route("/devices")
class Devices(MethodView):
    @blp.arguments(RegistrationIn())
    @blp.response(201, RegistrationOut)
    @blp.alt_response(200, schema=RegistrationOut, description="installation registered again")
    @blp.alt_response(401, description="missing or unknown X-App-Key")
    @blp.alt_response(429, description="too many registrations from this address")
    @blp.alt_response(503, description="a dependency is down; nothing was registered")
    def post(self, req: RegistrationRequest):
        """Register an app instance (X-App-Key): a device with its own durable queue."""
        _address_limit("address")
        d = deps()
        app = services.app_for_app_key(request.headers.get("X-App-Key", ""), store=d.store)
        reg = services.register_device(
            app, req, store=d.store, topology=d.topology, sessions=d.sessions
        )
        out = {"device_id": reg.device.id, "device_secret": reg.secret}
        return out, (200 if reg.existed else 201)


@blp.route("/sessions")
class Sessions(MethodView):
    @blp.arguments(SessionIn())
    @blp.response(201, SessionOut)
    @blp.alt_response(401, description="unknown device or wrong secret")
    def post(self, body: dict):
        """Open a session with the device secret; the token works on every instance."""
        # by address, not by device: anyone may call this, and must not be able to
        # spend a device's own budget by guessing its id
        _address_limit("session address")
        d = deps()
        token = services.open_session(
            body["device_id"], body["device_secret"], store=d.store, sessions=d.sessions
        )
        return {"session_token": token, "expires_in": d.settings.session_ttl_s}


@blp.route("/device")
class Device(MethodView):
    @blp.response(200, DeviceOut)
    @blp.alt_response(401, description="missing or expired session")
    def get(self):
        """The calling device, its pending message count and presence."""
        session = require_session()
        _device_limit(session.device_id)
        d = deps()
        view = services.view_device(
            session,
            store=d.store,
            topology=d.topology,
            sessions=d.sessions,
            held=d.mailbox.held_count(session.device_id),
        )
        return device_out(view)

    @blp.arguments(DevicePatch())
    @blp.response(200, DeviceOut)
    @blp.alt_response(401, description="missing or expired session")
    def patch(self, changes: DeviceChanges):
        """Change user, topics, locale or app version; bindings follow at once."""
        session = require_session()
        _device_limit(session.device_id)
        d = deps()
        view = services.update_device(
            session, changes, store=d.store, topology=d.topology, sessions=d.sessions
        )
        return device_out(view)

    @blp.response(204)
    @blp.alt_response(401, description="missing or expired session")
    def delete(self):
        """Unregister: the queue is deleted and every session revoked."""
        session = require_session()
        _device_limit(session.device_id)
        d = deps()
        services.delete_device(session, store=d.store, topology=d.topology, sessions=d.sessions)
        services.forget_holder(
            session.device_id, mailbox=d.mailbox, signals=d.signals, holders=d.holders
        )


@blp.route("/device/sync")
class Sync(MethodView):
    @blp.arguments(SyncIn())
    @blp.response(200, SyncOut)
    @blp.alt_response(401, description="missing or expired session")
    @blp.alt_response(404, description="the device was unregistered")
    @blp.alt_response(429, description="too many requests from this device")
    def post(self, req: SyncRequest):
        """Ack what was processed, then get up to `max` pending messages: high
        priority first, then in send order. Unacked messages come back later with
        `redelivered: true`. With `wait`, the call holds until a message arrives."""
        session = require_session()
        _device_limit(session.device_id)
        d = deps()
        messages = services.sync_device(
            session,
            req,
            mailbox=d.mailbox,
            signals=d.signals,
            holders=d.holders,
            count=d.tally.add,
        )
        body = b'{"messages":[' + b",".join(m.wire() for m in messages) + b"]}"
        return Response(body, 200, mimetype="application/json")
