"""Who is calling: the admin, an app's server (server key), or one device (session).

A missing or unknown token is 401; a valid token used outside its scope is 403."""

from __future__ import annotations

from dataclasses import replace

from flask import request

from device_registry import services
from device_registry.sessions import Session
from device_registry.store import App
from push_api.deps import deps
from pushbox_core.errors import Forbidden, Unauthorized
from pushbox_core.keys import same_key

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
    """The calling app's server, counted against the server key's rate limit."""
    token = _scoped(SERVER_KEY_PREFIX, "an app's server key")
    d = deps()
    app = services.app_for_server_key(token, store=d.store)
    if app is None:
        raise Unauthorized("unknown server key")
    d.limiter.check(d.limiter.server_key, app.id)
    return app


def require_device() -> Session:
    """The calling device's session, counted against the device's rate limit."""
    return device_of(_scoped(SESSION_TOKEN_PREFIX, "a device session token"))


def device_of(token: str) -> Session:
    """The device a session token names, seen now and counted against its rate limit
    (the token from the header, or from a stream's first frame)."""
    d = deps()
    session = services.authenticate_device(token, sessions=d.sessions)
    services.device_seen(session.device_id, sessions=d.sessions, store=d.store)
    d.limiter.check(d.limiter.device, session.device_id)
    return session


def _scoped(prefix: str, needed: str) -> str:
    """The bearer token, if it is of the kind a call needs (by its prefix); else 403
    naming what it is (checked first: an unknown token is 401)."""
    token = bearer()
    if not token.startswith(prefix):
        raise Forbidden(f"this call needs {needed}, not a {_scope_of(token)}")
    return token


def limit_by_address(kind: str) -> None:
    """Calls made without credentials are limited by client address (the registration
    limit: many phones may share a carrier's address); `kind` keeps one budget a call."""
    limiter = deps().limiter
    limiter.check(replace(limiter.address, kind=kind), request.remote_addr or "unknown")
