"""An FCM HTTP v1 stand-in: Google's OAuth token endpoint for its own service account,
and `POST /v1/projects/<id>/messages:send`, answering as FCM does (its error JSON)."""

from __future__ import annotations

import re
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs

import jwt

from tests.standins.keys import make_service_account
from tests.standins.server import LocalCA, Received, Response, Standin

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# google-auth puts Google's token URL in `aud` whatever the key file's token_uri says;
# the stand-in takes either
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
PAYLOAD_MAX_BYTES = 4096
SEND_PATH = re.compile(r"/v1/projects/([^/]+)/messages:send")
TTL = re.compile(r"\d+(\.\d{1,9})?s")
PRIORITIES = {"NORMAL", "HIGH", "normal", "high"}  # the v1 enum; Admin SDKs send lower case
RESERVED_DATA_KEYS = {"from", "notification", "message_type"}
MESSAGE_FIELDS = {
    "name",
    "token",
    "topic",
    "condition",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
}
NOTIFICATION_FIELDS = {"title", "body", "image"}
ANDROID_FIELDS = {
    "collapse_key",
    "priority",
    "ttl",
    "restricted_package_name",
    "data",
    "notification",
    "fcm_options",
    "direct_boot_ok",
}
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
MESSAGES = {
    "UNREGISTERED": "Requested entity was not found.",
    "INVALID_ARGUMENT": "The registration token is not a valid FCM registration token",
    "SENDER_ID_MISMATCH": "SenderId mismatch",
    "QUOTA_EXCEEDED": "Quota exceeded for quota metric 'Send requests'",
    "UNAVAILABLE": "The service is currently unavailable.",
    "INTERNAL": "Internal error encountered.",
}


def fcm_error(
    status: int, error_code: str | None, message: str, field: str | None = None
) -> Response:
    details: list[dict] = []
    if error_code:
        details.append({"@type": FCM_ERROR, "errorCode": error_code})
    if field:
        details.append(
            {"@type": BAD_REQUEST, "fieldViolations": [{"field": field, "description": message}]}
        )
    error = {
        "code": status,
        "message": message,
        "status": STATUS.get(status, "UNKNOWN"),
        "details": details,
    }
    return Response.json(status, {"error": error})


class Invalid(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def validate(body: Any) -> dict:
    """The message, or Invalid naming the field, as FCM's own checks would."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        raise Invalid("message", "Invalid JSON payload received: no message")
    unknown = set(body) - {"message", "validate_only"}
    if unknown:
        raise Invalid(min(unknown), f"Invalid JSON payload received. Unknown name {min(unknown)}")
    message = body["message"]
    unknown = set(message) - MESSAGE_FIELDS
    if unknown:
        name = min(unknown)
        raise Invalid(f"message.{name}", f"Unknown name \"{name}\" at 'message'")
    targets = [t for t in ("token", "topic", "condition") if message.get(t)]
    if len(targets) != 1:
        raise Invalid("message", "exactly one of token, topic or condition must be set")
    _check_data("message.data", message.get("data"))
    notification = message.get("notification")
    if notification is not None:
        if not isinstance(notification, dict) or set(notification) - NOTIFICATION_FIELDS:
            raise Invalid("message.notification", "Invalid notification")
        for k, v in notification.items():
            if not isinstance(v, str):
                raise Invalid(f"message.notification.{k}", f"Invalid value at {k} (TYPE_STRING)")
    android = message.get("android")
    if android is not None:
        if not isinstance(android, dict):
            raise Invalid("message.android", "Invalid android config")
        unknown = set(android) - ANDROID_FIELDS
        if unknown:
            name = min(unknown)
            raise Invalid(f"message.android.{name}", f'Unknown name "{name}"')
        if "priority" in android and android["priority"] not in PRIORITIES:
            raise Invalid("message.android.priority", "Invalid value at 'message.android.priority'")
        ttl = android.get("ttl")
        if ttl is not None and (not isinstance(ttl, str) or not TTL.fullmatch(ttl)):
            raise Invalid("message.android.ttl", "Invalid value at 'message.android.ttl'")
        if ttl is not None and float(ttl[:-1]) > 2_419_200:
            raise Invalid("message.android.ttl", "TTL is more than 4 weeks")
        if "collapse_key" in android and not isinstance(android["collapse_key"], str):
            raise Invalid("message.android.collapse_key", "Invalid collapse_key")
        _check_data("message.android.data", android.get("data"))
    size = sum(len(k.encode()) + len(v.encode()) for k, v in (message.get("data") or {}).items())
    size += sum(len(v.encode()) for v in (notification or {}).values())
    if size > PAYLOAD_MAX_BYTES:
        raise Invalid("message", f"Message is too big: {size} bytes of payload")
    return message


def _check_data(where: str, data: Any) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        raise Invalid(where, f"Invalid value at '{where}'")
    for n, (k, v) in enumerate(data.items()):
        if not isinstance(v, str):
            raise Invalid(
                f"{where}[{n}].value", f"Invalid value at '{where}[{n}].value' (TYPE_STRING)"
            )
        if k in RESERVED_DATA_KEYS or k.startswith(("google", "gcm")):
            raise Invalid(f"{where}[{n}].key", f"Invalid data key: {k}")


class FcmStandin(Standin):
    """`service_account` is the key file to give FcmCredentials.parse; its token_uri
    points here. `url` is what PUSH_FCM_URL takes."""

    name = "fcm"

    def __init__(
        self,
        ca: LocalCA,
        *,
        project_id: str = "pushbox-test",
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        super().__init__(ca, host=host, port=port)
        self.project_id = project_id
        self.token_uri = f"{self.url}/token"
        self.service_account, self._public_key = make_service_account(self.token_uri, project_id)
        self.token_lifetime_s = 3600
        self._tokens_lock = threading.Lock()
        self._access_tokens: dict[str, float] = {}  # token -> expires at
        self._refusal: tuple[int, str, str] | None = None
        self.sent = 0

    # ---- what a test reads and sets --------------------------------------------

    def sends(self) -> list[Received]:
        return [r for r in self.received if r.path.endswith("messages:send")]

    def token_requests(self) -> list[Received]:
        return [r for r in self.received if r.path == "/token"]

    def refuse_tokens(
        self,
        error: str = "invalid_grant",
        description: str = "Invalid JWT Signature.",
        status: int = 400,
    ) -> None:
        """Every token request from now on is refused (until reset)."""
        self._refusal = (status, error, description)

    def revoke_access_tokens(self) -> None:
        """Access tokens issued so far stop working (401 UNAUTHENTICATED)."""
        with self._tokens_lock:
            self._access_tokens.clear()

    def reset(self) -> None:
        self._refusal = None
        self.token_lifetime_s = 3600
        super().reset()

    # ---- the two endpoints -------------------------------------------------------

    def handle(self, request: Received) -> Response:
        if request.path == "/token" and request.method == "POST":
            return self._token(request)
        match = SEND_PATH.fullmatch(request.path)
        if match and request.method == "POST":
            return self._send(request, match.group(1))
        return fcm_error(404, None, f"no such endpoint: {request.method} {request.path}")

    def _token(self, request: Received) -> Response:
        if self._refusal is not None:
            status, error, description = self._refusal
            return Response.json(status, {"error": error, "error_description": description})
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != GRANT_TYPE:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type")
        assertion = form.get("assertion", "")
        info = self.service_account
        try:
            header = jwt.get_unverified_header(assertion)
            if header.get("alg") != "RS256" or header.get("kid") != info["private_key_id"]:
                return _oauth_error("invalid_grant", "Invalid JWT: alg or kid")
            claims = jwt.decode(
                assertion,
                self._public_key,
                algorithms=["RS256"],
                audience=[GOOGLE_TOKEN_URI, self.token_uri],
                issuer=info["client_email"],
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
                leeway=60,
            )
        except jwt.PyJWTError as e:
            return _oauth_error("invalid_grant", f"Invalid JWT: {e}")
        now = time.time()
        if not (claims["iat"] - 60 <= now and 0 < claims["exp"] - claims["iat"] <= 3600):
            return _oauth_error("invalid_grant", "Invalid JWT: iat/exp")
        if SCOPE not in str(claims["scope"]).split():
            return _oauth_error("invalid_scope", "scope must include firebase.messaging")
        token = "ya29.standin-" + secrets.token_urlsafe(24)
        with self._tokens_lock:
            self._access_tokens[token] = now + self.token_lifetime_s
        return Response.json(
            200,
            {"access_token": token, "expires_in": self.token_lifetime_s, "token_type": "Bearer"},
        )

    def _send(self, request: Received, project_id: str) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        with self._tokens_lock:
            expires = self._access_tokens.get(token, 0.0)
        if expires < time.time():
            return fcm_error(
                401,
                None,
                "Request had invalid authentication credentials. Expected OAuth 2 access token",
            )
        if project_id != self.project_id:
            return fcm_error(403, None, f"Permission denied on resource project {project_id}")
        try:
            message = validate(request.json())
        except ValueError:
            return fcm_error(400, None, "Invalid JSON payload received.")
        except Invalid as e:
            return fcm_error(400, "INVALID_ARGUMENT", str(e), e.field)
        target = message.get("token") or ""
        failure = self._take_failure(target)
        if failure is not None:
            headers = {"retry-after": failure.retry_after} if failure.retry_after else {}
            message_text = failure.extra.get("message") or MESSAGES.get(
                failure.reason, failure.reason
            )
            field = "message.token" if failure.reason == "INVALID_ARGUMENT" else None
            response = fcm_error(failure.status, failure.reason or None, message_text, field)
            response.headers.update(headers)
            return response
        with self._lock:
            self.sent += 1
            n = self.sent
        return Response.json(200, {"name": f"projects/{self.project_id}/messages/{n}"})


def _oauth_error(error: str, description: str) -> Response:
    return Response.json(400, {"error": error, "error_description": description})


__all__ = ["FcmStandin", "validate"]
