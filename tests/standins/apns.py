"""An APNs stand-in: HTTP/2 only (TLS, ALPN h2), token authentication, Apple's checks
on headers and payload, and Apple's error JSON `{"reason", "timestamp"?}`."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import jwt

from tests.standins.keys import make_apns_key
from tests.standins.server import LocalCA, Received, Response, Standin

DEVICE_PATH = re.compile(r"/3/device/([^/]+)")
DEVICE_TOKEN = re.compile(r"[0-9a-fA-F]{64,200}")
CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
PUSH_TYPES = {
    "alert",
    "background",
    "voip",
    "complication",
    "fileprovider",
    "mdm",
    "liveactivity",
    "location",
    "pushtotalk",
    "controls",
    "widgets",
}
PAYLOAD_MAX_BYTES = 4096
PROVIDER_TOKEN_MAX_AGE_S = 3600
VERIFIED_TOKENS_MAX = 1024  # provider tokens whose signature was checked, kept


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ApnsStandin(Standin):
    """`credentials()` gives what ApnsCredentials.parse takes; `url` is what
    PUSH_APNS_URL (or PUSH_APNS_SANDBOX_URL) takes."""

    name = "apns"
    h2_only = True

    def __init__(
        self,
        ca: LocalCA,
        *,
        team_id: str = "TEAM000001",
        key_id: str = "KEY0000001",
        bundle_id: str = "com.example.pushbox",
        host: str = "127.0.0.1",
        port: int = 0,
        cache_tokens: bool = True,
    ):
        """`cache_tokens`: check a provider token's signature once and remember it (a
        client sends the same token for up to an hour; checking ES256 on every push
        cost the stand-in 0.1-0.25 ms of CPU a push, a sixth of its whole cost, which a
        benchmark on the same cores charges to whatever it measures); its claims are
        still checked on every request, so an expired token is refused as before."""
        super().__init__(ca, host=host, port=port)
        self.team_id = team_id
        self.key_id = key_id
        self.bundle_id = bundle_id
        self.private_key, self._public_key = make_apns_key()
        self.cache_tokens = cache_tokens
        self._verified: dict[str, dict] = {}  # provider token -> its claims

    def credentials(self, environment: str = "production") -> dict[str, str]:
        return {
            "team_id": self.team_id,
            "key_id": self.key_id,
            "bundle_id": self.bundle_id,
            "private_key": self.private_key,
            "environment": environment,
        }

    def sends(self) -> list[Received]:
        return [r for r in self.received if r.path.startswith("/3/device/")]

    def provider_tokens(self) -> list[str]:
        """The JWT of each push received, in order."""
        return [r.headers.get("authorization", "").removeprefix("bearer ") for r in self.sends()]

    def handle(self, request: Received) -> Response:
        try:
            return self._handle(request)
        except Refused as e:
            body: dict[str, Any] = {"reason": e.reason}
            return Response.json(e.status, body)

    def _handle(self, request: Received) -> Response:
        if request.http_version != "2":
            raise Refused(400, "HTTP/2 required")
        match = DEVICE_PATH.fullmatch(request.path)
        if not match:
            raise Refused(404, "BadPath")
        if request.method != "POST":
            raise Refused(405, "MethodNotAllowed")
        device_token = match.group(1)
        h = request.headers
        self._authenticate(h.get("authorization", ""))
        topic = h.get("apns-topic")
        if not topic:
            raise Refused(400, "MissingTopic")
        if topic != self.bundle_id:
            raise Refused(400, "TopicDisallowed")
        if not DEVICE_TOKEN.fullmatch(device_token):
            raise Refused(400, "BadDeviceToken")
        apns_id = h.get("apns-id")
        if apns_id is not None and not CANONICAL_UUID.fullmatch(apns_id):
            raise Refused(400, "BadMessageId")
        push_type = h.get("apns-push-type")
        if push_type not in PUSH_TYPES:
            raise Refused(400, "InvalidPushType")
        priority = h.get("apns-priority", "10")
        if priority not in ("10", "5", "1") or (push_type == "background" and priority == "10"):
            raise Refused(400, "BadPriority")
        expiration = h.get("apns-expiration")
        if expiration is not None and not expiration.isdigit():
            raise Refused(400, "BadExpirationDate")
        collapse = h.get("apns-collapse-id")
        if collapse is not None and len(collapse.encode()) > 64:
            raise Refused(400, "BadCollapseId")
        self._check_payload(request.body, push_type)
        failure = self._take_failure(device_token)
        if failure is not None:
            body: dict[str, Any] = {"reason": failure.reason}
            if failure.status == 410:
                body["timestamp"] = failure.extra.get("timestamp_ms", int(time.time() * 1000))
            headers = {"retry-after": failure.retry_after} if failure.retry_after else {}
            return Response.json(failure.status, body, headers)
        return Response(200, b"", {"apns-id": apns_id or str(uuid.uuid4()).upper()})

    def _authenticate(self, authorization: str) -> None:
        if not authorization.startswith("bearer "):
            raise Refused(403, "MissingProviderToken")
        token = authorization[len("bearer ") :]
        claims = self._verified.get(token) if self.cache_tokens else None
        if claims is None:
            claims = self._verify(token)
            if self.cache_tokens:
                if len(self._verified) >= VERIFIED_TOKENS_MAX:
                    self._verified.clear()
                self._verified[token] = claims
        if claims["iss"] != self.team_id or not isinstance(claims["iat"], int):
            raise Refused(403, "InvalidProviderToken")
        age = time.time() - claims["iat"]
        if age < -60:
            raise Refused(403, "InvalidProviderToken")
        if age > PROVIDER_TOKEN_MAX_AGE_S:
            raise Refused(403, "ExpiredProviderToken")

    def _verify(self, token: str) -> dict:
        """The token's claims once its header and ES256 signature are right."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "ES256" or header.get("kid") != self.key_id:
                raise Refused(403, "InvalidProviderToken")
            return jwt.decode(
                token,
                self._public_key,
                algorithms=["ES256"],
                options={"require": ["iss", "iat"], "verify_iat": False, "verify_exp": False},
            )
        except jwt.PyJWTError:
            raise Refused(403, "InvalidProviderToken") from None

    @staticmethod
    def _check_payload(body: bytes, push_type: str) -> None:
        if not body:
            raise Refused(400, "PayloadEmpty")
        if len(body) > PAYLOAD_MAX_BYTES:
            raise Refused(413, "PayloadTooLarge")
        try:
            payload = json.loads(body)
        except ValueError:
            raise Refused(400, "BadPayload") from None
        aps = payload.get("aps") if isinstance(payload, dict) else None
        if not isinstance(aps, dict):
            raise Refused(400, "BadPayload")
        shows = any(k in aps for k in ("alert", "sound", "badge"))
        if push_type == "background" and (aps.get("content-available") != 1 or shows):
            raise Refused(400, "BadPayload")
        if push_type == "alert" and not shows:
            raise Refused(400, "BadPayload")
        if "mutable-content" in aps and (aps["mutable-content"] != 1 or "alert" not in aps):
            raise Refused(400, "BadPayload")


__all__ = ["ApnsStandin"]
