"""One table from Pushbox errors to HTTP statuses, and the handlers that use it.

Every error answers in flask-smorest's JSON shape, `{code, status, message, errors?}`,
plus `error`: a stable name of what went wrong that clients can switch on (the
`message` is for people and may change). Never a traceback or an internal name."""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask
from werkzeug.exceptions import HTTPException, InternalServerError

from pushbox_core import metrics
from pushbox_core.errors import (
    CampaignNotFound,
    Conflict,
    DeliveryUnknown,
    DependencyDown,
    DeviceNotFound,
    Forbidden,
    InvalidRequest,
    NotDelivered,
    NotFound,
    NotificationNotFound,
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

# the first class that matches wins: subclasses before their bases
HTTP_STATUS: dict[type[PushboxError], tuple[int, str]] = {
    Unauthorized: (401, "unauthorized"),
    Forbidden: (403, "forbidden"),
    DeviceNotFound: (404, "device_not_found"),
    NotificationNotFound: (404, "notification_not_found"),
    CampaignNotFound: (404, "campaign_not_found"),
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
    PayloadTooLarge: (413, "payload_too_large"),
    InvalidRequest: (422, "invalid_request"),
    RateLimited: (429, "rate_limited"),
    NotDelivered: (503, "not_delivered"),
    DeliveryUnknown: (503, "delivery_unknown"),
    DependencyDown: (503, "dependency_down"),
}

# errors raised by Flask and webargs (no Pushbox class): by status
HTTP_ERROR_NAMES = {
    400: "malformed_json",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal",
}


def body(code: int, message: str, error: str | None = None, **extra: object) -> dict:
    """An error body; `error` defaults to the name of the status."""
    name = error or HTTP_ERROR_NAMES.get(code) or HTTPStatus(code).phrase.lower().replace(" ", "_")
    return {
        "code": code,
        "status": HTTPStatus(code).phrase,
        "error": name,
        "message": message,
        **extra,
    }


def status_of(exc: PushboxError) -> tuple[int, str]:
    """(HTTP status, error name) of a Pushbox error."""
    return next(
        (found for t, found in HTTP_STATUS.items() if isinstance(exc, t)), (500, "internal")
    )


def on_pushbox_error(exc: PushboxError):
    code, payload, headers = pushbox_error_body(exc)
    return payload, code, headers


def pushbox_error_body(exc: PushboxError) -> tuple[int, dict, dict[str, str]]:
    """(status, body, headers) for a Pushbox error: a request's answer, or one item's
    in a batch."""
    code, name = status_of(exc)
    headers: dict[str, str] = {}
    extra: dict[str, object] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, DependencyDown):
        headers["Retry-After"] = str(RETRY_AFTER_DEPENDENCY_S)
        metrics.dependency_failed(exc)
        log.warning("%s down: %s", exc.dependency, exc.detail)
    if isinstance(exc, DeliveryUnknown) and exc.message_id:
        extra["id"] = exc.message_id
        return 503, body(503, UNCONFIRMED.format(id=exc.message_id), name, **extra), headers
    if isinstance(exc, InvalidRequest) and exc.field:
        extra["errors"] = {exc.location: {exc.field: [str(exc)]}}
    if code == 500:
        log.error("unmapped Pushbox error", exc_info=exc)
        return 500, body(500, "internal error"), {}
    return code, body(code, str(exc), name, **extra), headers


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
