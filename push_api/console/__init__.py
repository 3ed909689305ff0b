"""The operators' web console at /console: server-rendered pages (Jinja) over the same
services as the API, a cookie session opened with the admin token, and a little plain
JavaScript that keeps counters live.

- `login.py`: the session (log in, log out, the check every page makes) and CSRF;
- `pages.py`: the pages.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from flask import Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from push_api.console import login, pages
from pushbox_core.settings import Settings

SESSION_HOURS = 12
CONSOLE_PATH = "/console"


class _SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie session, Secure whenever the request came over HTTPS
    (nginx says so in X-Forwarded-Proto, read by ProxyFix), and only under /console
    (its cookie's path): the API's requests carry no cookie, and opening an empty
    session built a signing serializer for each of them (~2.5% of an API worker's
    time under sends, py-spy)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(CONSOLE_PATH):
            return None  # Flask's null session: nothing saved
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


def session_key(admin_token: str) -> str:
    """The key that signs console sessions: made from the admin token, so that every
    API instance shares it and a new admin token ends every session."""
    return hashlib.sha256(b"pushbox console session\0" + admin_token.encode()).hexdigest()


def register(app: Flask, settings: Settings) -> None:
    app.secret_key = session_key(settings.admin_token)
    app.session_interface = _SessionCookies()
    app.config.update(
        SESSION_COOKIE_NAME="pushbox_console",
        SESSION_COOKIE_PATH=CONSOLE_PATH,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )
    app.register_blueprint(login.blp)
    app.register_blueprint(pages.blp)
