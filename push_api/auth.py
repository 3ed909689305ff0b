"""Who is calling: the admin, an app's server (server key), or one device (session).

A missing or unknown token is 401; a valid token used outside its scope is 403."""

from __future__ import annotations

from flask import request

from device_registry import services
from device_registry.sessions import Session
from device_registry.store import App
from push_api.deps import deps
from pushbox_core.errors import Forbidden, Unauthorized
from pushbox_core.keys import same_key
from pushbox_core.rate_limits import Limit

SERVER_KEY_PREFIX = "sk_"
SESSION_TOKEN_PREFIX = "st_"


def bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing credentials: send Authorization: Bearer <token>")
    return token.strip()


def _is_admin(token: str) -> bool:
    admin = deps().settings.admin_token
    return bool(admin) and same_key(token, admin)


def _scope_of(token: str) -> str:
    """Which kind a token claims to be, checked only after it proves valid."""
    d = deps()
    if _is_admin(token):
        return "admin"
    if token.startswith(SERVER_KEY_PREFIX):
        if services.app_for_server_key(token, store=d.store) is None:
            raise Unauthorized("unknown server key")
        return "server key"
    if token.startswith(SESSION_TOKEN_PREFIX):
        services.authenticate_device(token, sessions=d.sessions)
        return "device session"
    raise Unauthorized("unknown token")


def require_admin() -> None:
    token = bearer()
    if not _is_admin(token):
        raise Forbidden(f"this call needs the admin token, not a {_scope_of(token)}")


def require_server_key() -> App:
    token = bearer()
    if token.startswith(SERVER_KEY_PREFIX):
        d = deps()
        app = services.app_for_server_key(token, store=d.store)
        if app is None:
            raise Unauthorized("unknown server key")
        s = d.settings
        limit = Limit("server key", s.rate_server_key_per_s, s.rate_server_key_burst)
        d.limiter.check(limit, app.id)
        return app
    raise Forbidden(f"this call needs an app's server key, not a {_scope_of(token)}")


def require_device() -> Session:
    """The calling device's session, counted against the device's rate limit."""
    token = bearer()
    if token.startswith(SESSION_TOKEN_PREFIX):
        d = deps()
        session = services.authenticate_device(token, sessions=d.sessions)
        d.sessions.seen(session.device_id)
        s = d.settings
        limit = Limit("device", s.rate_device_per_s, s.rate_device_burst)
        d.limiter.check(limit, session.device_id)
        return session
    raise Forbidden(f"this call needs a device session token, not a {_scope_of(token)}")


def limit_by_address(kind: str) -> None:
    """Calls made without credentials are limited by client address (the registration
    limit: many phones may share a carrier's address)."""
    s = deps().settings
    limit = Limit(kind, s.rate_registration_per_s, s.rate_registration_burst)
    deps().limiter.check(limit, request.remote_addr or "unknown")
