"""The console's pages. Each view reads its form, calls one service (the API's own for
creating an app and sending; dispatcher.inspection for what only operators read) and
renders a template. Keys appear once, on the page that answers the app's creation
(never stored in clear, so never shown again); no page shows a server key, a secret,
a push token or a private key."""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from device_registry import services as registry
from dispatcher import inspection
from dispatcher import services as sending
from dispatcher.campaigns import services as campaigns
from dispatcher.messages import Content, Target
from dispatcher.platforms import credentials
from push_api.console.login import require_session
from push_api.deps import deps
from push_api.errors import status_of
from pushbox_core.errors import PushboxError
from pushbox_core.times import rfc3339

blp = Blueprint(
    "console_pages",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)
blp.before_request(require_session)

NO_STORE = {"Cache-Control": "no-store"}
TEST_TITLE = "Test from the Pushbox console"
RECENT_CAMPAIGNS = 50


@blp.errorhandler(PushboxError)
def on_error(exc: PushboxError):
    code, _ = status_of(exc)
    return render_template("console/error.html", code=code, message=str(exc)), code


@blp.get("/")
def home():
    return redirect(url_for(".apps"))


@blp.get("/apps")
def apps():
    return render_template("console/apps.html", apps=inspection.apps(pb=deps()))


@blp.post("/apps")
def create_app():
    name = request.form.get("name", "").strip()[:200]
    if not name:
        flash("An app needs a name.")
        return redirect(url_for(".apps"))
    created = registry.add_app(name, store=deps().store)
    # the only page that ever shows these keys: not cached, not kept
    return render_template("console/app_created.html", created=created), 201, NO_STORE


@blp.get("/apps/<app_id>")
def app(app_id: str):
    pb = deps()
    view = credentials.view_app(inspection.app(app_id, pb=pb).id, store=pb.store)
    return render_template("console/app.html", app=view.app, credentials=view.credentials)


@blp.get("/apps/<app_id>/devices")
def devices(app_id: str):
    pb = deps()
    found_app = inspection.app(app_id, pb=pb)
    text = request.args.get("q", "")
    found = inspection.find_devices(app_id, text, pb=pb)
    return render_template("console/devices.html", app=found_app, q=text, devices=found)


@blp.get("/apps/<app_id>/devices/<device_id>")
def device(app_id: str, device_id: str):
    pb = deps()
    found_app = inspection.app(app_id, pb=pb)
    state = inspection.device_state(app_id, device_id, pb=pb)
    return render_template("console/device.html", app=found_app, state=state, title=TEST_TITLE)


@blp.post("/apps/<app_id>/devices/<device_id>/test")
def send_test(app_id: str, device_id: str):
    content = Content(
        title=request.form.get("title", "").strip() or TEST_TITLE,
        body=request.form.get("body", "").strip() or None,
    )
    sent = sending.notify(app_id, Target("device", device_id), content, d=deps().dispatch)
    flash(f"Sent notification {sent.id} to device {device_id}.")
    return redirect(url_for(".notifications", app_id=app_id, sent=sent.id))


@blp.get("/apps/<app_id>/notifications")
def notifications(app_id: str):
    pb = deps()
    found_app = inspection.app(app_id, pb=pb)
    recent = inspection.recent_notifications(app_id, pb=pb)
    return render_template(
        "console/notifications.html",
        app=found_app,
        notifications=recent,
        sent=request.args.get("sent"),
    )


@blp.get("/apps/<app_id>/notifications.json")
def notification_counters(app_id: str):
    """What the notifications page polls: each recent notification's counters."""
    recent = inspection.recent_notifications(app_id, pb=deps())
    return jsonify(
        {
            "notifications": [
                {
                    "id": n.id,
                    "created_at": rfc3339(n.created_at),
                    "targets": n.targets,
                    "acked": n.acked,
                    "expired": n.expired,
                    "dropped": n.dropped,
                    "collapsed": n.collapsed,
                    "woken": n.woken,
                    "wake_failed": n.wake_failed,
                }
                for n in recent
            ]
        }
    )


@blp.get("/apps/<app_id>/campaigns")
def campaign_list(app_id: str):
    """The app's latest campaigns with their counters (the API's own listing; the page
    reloads itself every few seconds while one is unfinished)."""
    pb = deps()
    found_app = inspection.app(app_id, pb=pb)
    latest = campaigns.page(app_id, None, RECENT_CAMPAIGNS, None, c=pb.campaigns).campaigns
    return render_template("console/campaigns.html", app=found_app, campaigns=latest)
