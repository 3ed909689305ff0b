"""Apple Push Notification service: HTTP/2, token-based authentication.

`POST /3/device/<token>` with `authorization: bearer <ES256 JWT>` (header kid = key id,
claims iss = team id, iat). Apple wants the JWT refreshed no more often than every
20 minutes and no less often than every 60: it is signed once and reused for
JWT_RESIGN_AFTER_S, and re-signed early only when Apple answers ExpiredProviderToken
(once, then the request is tried again)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from dispatcher.platforms import payloads
from dispatcher.platforms.push import CredentialsInvalid, Outcome, Push
from dispatcher.platforms.transport import (
    HttpOwner,
    network_outcome,
    retry_after_s,
)

PRODUCTION_URL = "https://api.push.apple.com"
SANDBOX_URL = "https://api.sandbox.push.apple.com"
ENVIRONMENTS = ("production", "sandbox")
JWT_RESIGN_AFTER_S = 40 * 60
APPLE_ID = re.compile(r"[A-Z0-9]{10}")
BUNDLE_ID = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
DEVICE_TOKEN = re.compile(r"[0-9A-Fa-f]{8,400}")
DEAD_TOKEN_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic"})
# the app's key, key id, team or bundle id is wrong: the credential, not the push
CREDENTIAL_REASONS = frozenset(
    {
        "BadCertificate",
        "BadCertificateEnvironment",
        "ExpiredProviderToken",
        "Forbidden",
        "InvalidProviderToken",
        "MissingProviderToken",
        "MissingTopic",
        "BadTopic",
        "TopicDisallowed",
    }
)


@dataclass(frozen=True)
class ApnsCredentials:
    team_id: str
    key_id: str
    bundle_id: str
    environment: str
    private_key: str = field(repr=False)  # the .p8 PEM
    key: EllipticCurvePrivateKey = field(repr=False, compare=False)

    @classmethod
    def parse(
        cls,
        team_id: Any,
        key_id: Any,
        bundle_id: Any,
        private_key: Any,
        environment: Any,
    ) -> ApnsCredentials:
        """Checked for shape; CredentialsInvalid names the first field that is wrong."""

        def text(name: str, value: Any) -> str:
            if not isinstance(value, str) or not value.strip():
                raise CredentialsInvalid(f"{name} is missing", name)
            return value.strip()

        team = text("team_id", team_id)
        if not APPLE_ID.fullmatch(team):
            raise CredentialsInvalid(
                "team_id must be the 10 capital letters and digits of your Apple team id",
                "team_id",
            )
        kid = text("key_id", key_id)
        if not APPLE_ID.fullmatch(kid):
            raise CredentialsInvalid(
                "key_id must be the 10 capital letters and digits of the APNs key's id",
                "key_id",
            )
        bundle = text("bundle_id", bundle_id)
        if not BUNDLE_ID.fullmatch(bundle):
            raise CredentialsInvalid("bundle_id is not a bundle identifier", "bundle_id")
        env = text("environment", environment)
        if env not in ENVIRONMENTS:
            raise CredentialsInvalid("environment must be production or sandbox", "environment")
        pem = text("private_key", private_key)
        if "-----BEGIN" not in pem:  # the key's base64 without its PEM lines
            pem = f"-----BEGIN PRIVATE KEY-----\n{pem}\n-----END PRIVATE KEY-----\n"
        try:
            key = load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, EllipticCurvePrivateKey) or not isinstance(key.curve, SECP256R1):
            raise CredentialsInvalid(
                "private_key is not an APNs key (a .p8 PEM holding a P-256 private key)",
                "private_key",
            )
        return cls(team, kid, bundle, env, pem, key)

    def public(self) -> dict:
        """What GET /v1/app may show."""
        return {
            "team_id": self.team_id,
            "key_id": self.key_id,
            "bundle_id": self.bundle_id,
            "environment": self.environment,
        }


class ProviderTokens:
    """The ES256 provider token, signed once and reused until JWT_RESIGN_AFTER_S."""

    def __init__(self, credentials: ApnsCredentials, *, clock: Callable[[], float] = time.time):
        self._credentials = credentials
        self._clock = clock
        self._token: str | None = None
        self._signed_at = 0.0
        self.signed = 0  # how many tokens were signed: for tests and metrics

    def current(self) -> str:
        if self._token is None or self._clock() - self._signed_at >= JWT_RESIGN_AFTER_S:
            self._sign()
        assert self._token is not None
        return self._token

    def renew(self, stale: str) -> str:
        """Apple called `stale` expired: sign anew, unless a concurrent request already
        did (many in flight see the same answer; Apple refuses frequent re-signing)."""
        if stale == self._token:
            self._sign()
        return self.current()

    def _sign(self) -> None:
        now = self._clock()
        c = self._credentials
        self._token = jwt.encode(
            {"iss": c.team_id, "iat": int(now)}, c.key, algorithm="ES256", headers={"kid": c.key_id}
        )
        self._signed_at = now
        self.signed += 1


class ApnsClient(HttpOwner):
    """Sends pushes for one APNs key and bundle id. Use from one event loop; close with
    `aclose()` (or `async with`)."""

    provider = "apns"

    def __init__(
        self,
        credentials: ApnsCredentials,
        *,
        base_url: str | None = None,
        ca_file: str | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ):
        """`base_url`: default by the credentials' environment. `http`: a client made by
        `transport.http_client` with the same `ca_file`; else the client makes its own."""
        if base_url is None:
            base_url = PRODUCTION_URL if credentials.environment == "production" else SANDBOX_URL
        self.credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.tokens = ProviderTokens(credentials, clock=clock)
        self._clock = clock
        super().__init__(http, ca_file)

    @classmethod
    def from_settings(
        cls, credentials: ApnsCredentials, settings: Any, **kwargs: Any
    ) -> ApnsClient:
        production = credentials.environment == "production"
        url = settings.apns_url if production else settings.apns_sandbox_url
        return cls(credentials, base_url=url, ca_file=settings.ca_file or None, **kwargs)

    async def send(self, push: Push) -> Outcome:
        if not DEVICE_TOKEN.fullmatch(push.token):
            return Outcome("invalid_token", "BadDeviceToken", detail="not a hex device token")
        url = f"{self.base_url}/3/device/{push.token}"
        body = payloads.apns_payload(push)
        headers = payloads.apns_headers(push, topic=self.credentials.bundle_id, now_s=self._clock())
        for attempt in (1, 2):
            token = self.tokens.current()
            try:
                response = await self._http.post(
                    url, content=body, headers={**headers, "authorization": f"bearer {token}"}
                )
            except httpx.HTTPError as e:
                return network_outcome(e, "APNs")
            expired = _reason(response.content) == "ExpiredProviderToken"
            if response.status_code == 403 and expired and attempt == 1:
                self.tokens.renew(token)
                continue
            break
        return classify(
            response.status_code, response.content, response.headers.get("retry-after"), push
        )


def _answer(content: bytes) -> dict:
    try:
        answer = json.loads(content)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _reason(content: bytes) -> str:
    return str(_answer(content).get("reason") or "") if content else ""


def classify(status: int, content: bytes, retry_after: str | None, push: Push) -> Outcome:
    """An APNs answer as an Outcome (Apple's "Handling notification responses")."""
    if status == 200:
        return Outcome("accepted")
    answer = _answer(content)
    reason = str(answer.get("reason") or f"HTTP {status}")
    detail = f"APNs {status} {reason}"
    if status == 410:
        # the device unregistered at `timestamp`; a token registered since is newer news
        stamp = answer.get("timestamp")
        if isinstance(stamp, int | float) and stamp <= push.registered_at_s() * 1000:
            return Outcome(
                "failed", reason, detail=f"{detail}: at {stamp} ms, before the token was registered"
            )
        return Outcome("invalid_token", reason, detail=detail)
    if reason in DEAD_TOKEN_REASONS:
        return Outcome("invalid_token", reason, detail=detail)
    if status == 403 or reason in CREDENTIAL_REASONS:
        return Outcome("credentials_rejected", reason, detail=detail)
    if status == 429 or status >= 500:
        return Outcome("retry", reason, retry_after_s(retry_after), detail=detail)
    return Outcome("failed", reason, detail=detail)


__all__ = [
    "ENVIRONMENTS",
    "JWT_RESIGN_AFTER_S",
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "ApnsClient",
    "ApnsCredentials",
    "ProviderTokens",
    "classify",
]
