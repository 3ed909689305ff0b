"""The console's session: log in with the admin token (form field `token`), log out,
and the check before every other console page (no session: to the login page).

Forms are CSRF-safe twice over: the session cookie is SameSite=Strict (a page of
another site never sends it), and every form carries a random token kept in the
session, checked on each POST (`check_csrf`)."""

from __future__ import annotations

import hmac
import secrets

from flask import (
    Blueprint,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from push_api.auth import limit_by_address
from push_api.deps import deps
from pushbox_core.keys import same_key

blp = Blueprint("console_login", __name__, url_prefix="/console", template_folder="templates")

OPEN_ENDPOINTS = {"console_login.login", "console_login.log_in", "console_pages.static"}


def csrf_token() -> str:
    """This session's form token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    sent = request.form.get("csrf", "")
    kept = session.get("csrf", "")
    if not (sent and kept and hmac.compare_digest(sent, kept)):
        abort(400, "the form expired: load the page again")


def logged_in() -> bool:
    """A session signed with a key made from the admin token; without an admin token
    that key is public knowledge, so no session counts (login refuses one too)."""
    return bool(deps().settings.admin_token) and session.get("admin") is True


def require_session():
    """Before every console page: a session, and on POST a valid form token."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if not logged_in():
        if request.path.endswith(".json"):  # the live counters' polling
            return jsonify({"error": "unauthorized", "message": "log in again"}), 401
        return redirect(url_for("console_login.login", next=request.full_path.rstrip("?")))
    if request.method == "POST":
        check_csrf()
    return None


@blp.app_context_processor
def form_token() -> dict:
    return {"csrf_token": csrf_token}


@blp.get("/login")
def login():
    return render_template("console/login.html", next=request.args.get("next", ""))


@blp.post("/login")
def log_in():
    limit_by_address("console login")
    check_csrf()
    admin = deps().settings.admin_token
    token = request.form.get("token", "").strip()
    target = request.form.get("next", "")
    if not (admin and token and same_key(token, admin)):
        page = render_template("console/login.html", next=target, refused=True)
        return page, 401
    session.clear()  # a fresh session: nothing of the anonymous one carries over
    session.permanent = True
    session["admin"] = True
    csrf_token()
    # only a console path of this site: never an open redirect
    safe = target.startswith("/console/") and not target.startswith("//")
    return redirect(target if safe else url_for("console_pages.apps"))


blp.before_request(require_session)


@blp.post("/logout")
def log_out():
    session.clear()
    return redirect(url_for("console_login.login"))
