"""Device endpoints: register, open a session, read, change and remove the device, and
sync its mailbox."""

from dataclasses import replace

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from device_registry import services
from device_registry.services import DeviceChanges, DeviceView, RegistrationRequest
from dispatcher.delivery import sync
from dispatcher.delivery.sync import SyncRequest
from push_api.auth import limit_by_address, require_device
from push_api.deps import deps
from push_api.schemas import (
    DeviceOut,
    DevicePatch,
    RegistrationIn,
    RegistrationOut,
    SessionIn,
    SessionOut,
    SyncIn,
    SyncOut,
    sync_answer,
)

blp = Blueprint("devices", __name__, url_prefix="/v1", description="Devices")


def _connected(view: DeviceView) -> DeviceView:
    """The view, with whether the device waits or streams anywhere now."""
    connected = deps().delivery.connections.connected([view.device.id])
    return replace(view, connected=bool(connected))


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
        limit_by_address("address")
        d = deps()
        app = services.app_for_app_key(request.headers.get("X-App-Key", ""), store=d.store)
        reg = services.register_device(
            app, req, store=d.store, topology=d.topology, sessions=d.sessions, events=d.events
        )
        return reg, (200 if reg.existed else 201)


@blp.route("/sessions")
class Sessions(MethodView):
    @blp.arguments(SessionIn())
    @blp.response(201, SessionOut)
    @blp.alt_response(401, description="unknown device or wrong secret")
    def post(self, body: dict):
        """Open a session with the device secret; the token works on every instance."""
        # by address, not by device: anyone may call this, and must not be able to
        # spend a device's own budget by guessing its id
        limit_by_address("session address")
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
        session = require_device()
        d = deps()
        view = services.view_device(
            session,
            store=d.store,
            topology=d.topology,
            sessions=d.sessions,
            held=d.delivery.mailbox.held_count(session.device_id),
        )
        return _connected(view)

    @blp.arguments(DevicePatch())
    @blp.response(200, DeviceOut)
    @blp.alt_response(401, description="missing or expired session")
    def patch(self, changes: DeviceChanges):
        """Change user, topics, locale or app version; bindings follow at once."""
        session = require_device()
        d = deps()
        return _connected(
            services.update_device(
                session, changes, store=d.store, topology=d.topology, sessions=d.sessions
            )
        )

    @blp.response(204)
    @blp.alt_response(401, description="missing or expired session")
    def delete(self):
        """Unregister: the queue is deleted and every session revoked."""
        session = require_device()
        d = deps()
        services.delete_device(
            session, store=d.store, topology=d.topology, sessions=d.sessions, events=d.events
        )
        sync.forget_holder(session.device_id, d=d.delivery)


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
        session = require_device()
        d = deps()
        count = d.tally.for_device(session.app_id, session.device_id)
        messages = sync.sync_device(session, req, d=d.delivery, count=count)
        # the stored JSON spliced as it is (SyncOut's shape: tests/test_openapi.py)
        return Response(sync_answer(messages), 200, mimetype="application/json")
