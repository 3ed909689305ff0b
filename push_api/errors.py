"""One table from Pushbox errors to HTTP statuses, and the handlers that use it.

Every error answers in flask-smorest's JSON shape, `{code, status, message, errors?}`,
never with a traceback or an internal name."""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask
from werkzeug.exceptions import HTTPException, InternalServerError

from pushbox_core.errors import (
    Conflict,
    DeliveryUnknown,
    DependencyDown,
    Forbidden,
    InvalidRequest,
    NotDelivered,
    NotFound,
    PayloadTooLarge,
    PushboxError,
    RateLimited,
    Unauthorized,
)

log = logging.getLogger(__name__)

RETRY_AFTER_DEPENDENCY_S = 5

UNCONFIRMED = (
    "the message broker did not confirm notification {id}: it may still be delivered"
    " (GET /v1/notifications/{id}). Sent again with the same Idempotency-Key, it goes"
    " out under the same id, which devices dedupe"
)

HTTP_STATUS: dict[type[PushboxError], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    InvalidRequest: 422,
    RateLimited: 429,
    NotDelivered: 503,
    DependencyDown: 503,
}


def body(code: int, message: str, **extra: object) -> dict:
    return {"code": code, "status": HTTPStatus(code).phrase, "message": message, **extra}


def on_pushbox_error(exc: PushboxError):
    code = next((c for t, c in HTTP_STATUS.items() if isinstance(exc, t)), 500)
    headers = {}
    extra: dict[str, object] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, DependencyDown):
        headers["Retry-After"] = str(RETRY_AFTER_DEPENDENCY_S)
        log.warning("%s down: %s", exc.dependency, exc.detail)
    if isinstance(exc, DeliveryUnknown) and exc.message_id:
        extra["id"] = exc.message_id
        return body(503, UNCONFIRMED.format(id=exc.message_id), **extra), 503, headers
    if isinstance(exc, InvalidRequest) and exc.field:
        extra["errors"] = {"json": {exc.field: [str(exc)]}}
    if code == 500:
        log.error("unmapped Pushbox error", exc_info=exc)
        return body(500, "internal error"), 500
    return body(code, str(exc), **extra), code, headers


def describe(errors: object, path: str = "") -> list[str]:
    """Flatten webargs' nested messages into 'json.field: problem' lines."""
    if isinstance(errors, dict):
        out = []
        for key, value in errors.items():
            out += describe(value, f"{path}.{key}" if path else str(key))
        return out
    if isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        return [f"{path}: {' '.join(errors)}"]
    if isinstance(errors, list):
        return [line for e in errors for line in describe(e, path)]
    return [f"{path}: {errors}"]


def on_http_error(exc: HTTPException):
    code = exc.code or 500
    data = getattr(exc, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    if code == 400 and errors:
        return body(400, "malformed JSON body", errors=errors), 400
    if code == 422 and errors:
        return body(422, "invalid request: " + "; ".join(describe(errors)), errors=errors), 422
    if code == 413:
        return body(413, "request body too large"), 413
    message = data.get("message") or exc.description or HTTPStatus(code).phrase
    return body(code, message), code, data.get("headers") or {}


def on_unexpected(exc: Exception):
    if isinstance(exc, HTTPException) and not isinstance(exc, InternalServerError):
        return on_http_error(exc)
    log.exception("unexpected error")
    return body(500, "internal error"), 500


def register(app: Flask) -> None:
    app.register_error_handler(PushboxError, on_pushbox_error)
    app.register_error_handler(HTTPException, on_http_error)
    app.register_error_handler(Exception, on_unexpected)
