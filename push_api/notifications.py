"""Sender endpoints (server key): broadcasts, notifications and their stats."""

from collections.abc import Callable

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from dispatcher import batch, services
from dispatcher.messages import Content
from push_api.auth import require_server_key
from push_api.campaign_schemas import BatchIn, BatchOut
from push_api.deps import deps
from push_api.errors import pushbox_error_body
from push_api.schemas import (
    BroadcastIn,
    NotificationIn,
    NotificationOut,
    NotificationRequest,
    SentOut,
)

blp = Blueprint("notifications", __name__, url_prefix="/v1", description="Sending (server key)")

IDEMPOTENCY_HEADER = "Idempotency-Key"
# made once, not per request: a marshmallow schema deep-copies its fields when made
# (under yappi that cost a send more than the dump itself); dumping is thread-safe
SENT_OUT = SentOut()
BATCH_OUT = BatchOut()


def _send_once(app_id: str, send: Callable[[str | None], services.Sent]) -> tuple[dict, int]:
    """Run `send(resend_id)` at most once per Idempotency-Key (see
    pushbox_core.idempotency); the answer, through SentOut, is what the key keeps."""
    return deps().idempotency.once(
        app_id,
        request.headers.get(IDEMPOTENCY_HEADER),
        lambda resend: (SENT_OUT.dump(send(resend)), 202),
    )


@blp.route("/broadcasts")
class Broadcasts(MethodView):
    @blp.arguments(BroadcastIn())
    @blp.response(202, SentOut)
    @blp.alt_response(413, description="title + body + data over 4,096 bytes")
    @blp.alt_response(503, description="not sent: a dependency is down")
    def post(self, content: Content):
        """Send to every device of the app, online or not. Answers once the broker
        confirmed; `targets` counts the active devices at send time."""
        app = require_server_key()
        dispatch = deps().dispatch
        return _send_once(
            app.id, lambda resend: services.broadcast(app.id, content, d=dispatch, resend_id=resend)
        )


@blp.route("/notifications")
class Notifications(MethodView):
    @blp.arguments(NotificationIn())
    @blp.response(202, SentOut)
    @blp.alt_response(404, description="the target has no active device")
    @blp.alt_response(413, description="title + body + data over 4,096 bytes")
    @blp.alt_response(503, description="not sent: a dependency is down")
    def post(self, req: NotificationRequest):
        """Send to one device, every device of one user, or a topic (default priority
        high: it overtakes pending promos)."""
        app = require_server_key()
        d = deps()

        def send(resend: str | None) -> services.Sent:
            if resend is None:  # a fresh id: sent with the requests running beside it
                return d.sends.notify(app.id, req.target, req.content)
            return services.notify(app.id, req.target, req.content, d=d.dispatch, resend_id=resend)

        return _send_once(app.id, send)


@blp.before_request
def batches_may_be_larger() -> None:
    """A batch carries up to 500 notifications: its own body limit, not the 64 KiB of
    one request."""
    if request.endpoint == f"{blp.name}.Batch":
        request.max_content_length = deps().settings.max_batch_request_bytes


@blp.route("/notifications/batch")
class Batch(MethodView):
    @blp.arguments(BatchIn())
    @blp.response(200, BatchOut)
    @blp.alt_response(503, description="nothing sent: the database is down")
    def post(self, items: list):
        """1 to 500 notifications in one call, each standing alone: one result an item,
        in order, `{id, targets}` or `{error}` (a bad item fails only itself)."""
        app = require_server_key()
        d = deps()

        def send(_resend: str | None) -> tuple[dict, int]:
            results = batch.notify_many(app.id, items, d=d.dispatch)
            out = [
                {"error": pushbox_error_body(r)[1]} if isinstance(r, Exception) else r
                for r in results
            ]
            return BATCH_OUT.dump({"results": out}), 200

        return d.idempotency.once(app.id, request.headers.get(IDEMPOTENCY_HEADER), send)


@blp.route("/notifications/<notification_id>")
class Notification(MethodView):
    @blp.response(200, NotificationOut)
    @blp.alt_response(404, description="no such notification in this app")
    def get(self, notification_id: str):
        """What was sent, to how many devices, and what became of it."""
        app = require_server_key()
        return services.stats(app.id, notification_id, notifications=deps().notifications)
