"""Firebase Cloud Messaging, HTTP v1 API: `POST /v1/projects/<id>/messages:send`.

Authorised by an OAuth access token that google-auth's service-account credentials get
from the key file's own `token_uri` (an RS256 JWT grant). One token serves every send
until shortly before it expires; one refresh at a time, in a thread, so the event loop
never waits on it and a burst of sends causes one token request, not one each."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import google.auth.exceptions
import google.auth.transport.urllib3
import httpx
import urllib3
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from google.oauth2 import service_account

from dispatcher.platforms import payloads
from dispatcher.platforms.push import CredentialsInvalid, Outcome, Push
from dispatcher.platforms.transport import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    HttpOwner,
    network_outcome,
    retry_after_s,
    ssl_context,
)

DEFAULT_URL = "https://fcm.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
TOKEN_REFRESH_MARGIN_S = 300  # a token this close to expiry is replaced before use
EXPIRY_SLACK_S = 30  # an old token is used while refreshing fails, until this close to expiry
REFRESH_RETRY_S = 15  # meanwhile, how often a refresh is tried again
TOKEN_LIFETIME_DEFAULT_S = 3600  # when the token endpoint gives no expires_in
REFUSED_RECHECK_S = 60  # after Google refused the key, ask again at most this often
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


@dataclass(frozen=True)
class FcmCredentials:
    project_id: str
    client_email: str
    token_uri: str
    info: dict = field(repr=False, compare=False)  # the whole key file, private key included

    @classmethod
    def parse(cls, service_account_json: Any) -> FcmCredentials:
        """The JSON key file Google issues, checked for shape; CredentialsInvalid names
        the first field that is missing or wrong."""
        info = service_account_json
        where = "service_account"
        if not isinstance(info, dict):
            raise CredentialsInvalid(
                "service_account must be the JSON key file Google issues (an object)", where
            )

        def text(name: str) -> str:
            value = info.get(name)
            if not isinstance(value, str) or not value.strip():
                raise CredentialsInvalid(f"{where}.{name} is missing", f"{where}.{name}")
            return value.strip()

        if info.get("type") != "service_account":
            raise CredentialsInvalid(
                f'{where}.type must be "service_account" (a service account key file)',
                f"{where}.type",
            )
        project_id = text("project_id")
        client_email = text("client_email")
        if "@" not in client_email:
            raise CredentialsInvalid(
                f"{where}.client_email is not an email address", f"{where}.client_email"
            )
        pem = text("private_key")
        try:
            key = load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, RSAPrivateKey):
            raise CredentialsInvalid(
                f"{where}.private_key is not a PEM RSA private key", f"{where}.private_key"
            )
        token_uri = text("token_uri")
        if not token_uri.startswith("https://"):
            raise CredentialsInvalid(
                f"{where}.token_uri must be an https URL", f"{where}.token_uri"
            )
        try:
            service_account.Credentials.from_service_account_info(info)
        except (ValueError, google.auth.exceptions.GoogleAuthError) as e:
            raise CredentialsInvalid(f"{where} is not usable: {e}", where) from None
        return cls(project_id, client_email, token_uri, dict(info))

    def public(self) -> dict:
        """What GET /v1/app may show."""
        return {"project_id": self.project_id}


class TokenUnavailable(Exception):
    def __init__(self, outcome: Outcome):
        super().__init__(outcome.reason)
        self.outcome = outcome


class AccessTokens:
    """The OAuth access token for one service account, fetched with google-auth over a
    urllib3 pool with its own SSL context: httpx sets ALPN h2 on the context it is given,
    and urllib3 speaks HTTP/1.1 only."""

    def __init__(self, credentials: FcmCredentials, ctx: ssl.SSLContext):
        self._google = service_account.Credentials.from_service_account_info(
            credentials.info, scopes=[SCOPE]
        )
        pool = urllib3.PoolManager(
            ssl_context=ctx,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
            retries=False,
        )
        self._pool = pool
        self._request = google.auth.transport.urllib3.Request(pool)
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._usable_until = 0.0  # replaced from then on
        self._expires_at = 0.0  # Google's word
        self._refused: tuple[float, Outcome] | None = None
        self.fetched = 0  # how many tokens this process got: for tests and metrics

    async def get(self) -> str:
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:  # the first waiter refreshes, the rest reuse its token
            token = self._fresh()
            if token is not None:
                return token
            if self._refused and time.monotonic() - self._refused[0] < REFUSED_RECHECK_S:
                raise TokenUnavailable(self._refused[1])
            try:
                return await self._refresh()
            except TokenUnavailable as e:
                # the token endpoint is down: a token not yet expired still serves, and
                # the next refresh is tried a little later, not by every send
                valid_until = self._expires_at - EXPIRY_SLACK_S
                if e.outcome.result != "retry" or not self._token or time.time() >= valid_until:
                    raise
                self._usable_until = min(valid_until, time.time() + REFRESH_RETRY_S)
                return self._token

    def invalidate(self, token: str) -> None:
        """FCM said 401 with this token: the next get() fetches another."""
        if token == self._token:
            self._token = None
            self._expires_at = self._usable_until = 0.0

    def _fresh(self) -> str | None:
        if self._token and time.time() < self._usable_until:
            return self._token
        return None

    async def _refresh(self) -> str:
        try:
            await asyncio.to_thread(self._google.refresh, self._request)
        except google.auth.exceptions.RefreshError as e:
            outcome = _refresh_outcome(e)
            if outcome.result == "credentials_rejected":
                self._refused = (time.monotonic(), outcome)
            raise TokenUnavailable(outcome) from None
        except google.auth.exceptions.TransportError as e:
            raise TokenUnavailable(network_outcome(e, "FCM token endpoint")) from None
        self._refused = None
        self.fetched += 1
        expiry = self._google.expiry
        if expiry is None:
            expires_at = time.time() + TOKEN_LIFETIME_DEFAULT_S
        else:
            expires_at = expiry.replace(tzinfo=UTC).timestamp()
        self._token = str(self._google.token)
        self._expires_at = expires_at
        self._usable_until = expires_at - TOKEN_REFRESH_MARGIN_S
        return self._token

    def close(self) -> None:
        self._pool.clear()


def _refresh_outcome(e: google.auth.exceptions.RefreshError) -> Outcome:
    data = e.args[1] if len(e.args) > 1 else None
    error = data.get("error") if isinstance(data, dict) else None
    detail = f"FCM token endpoint: {e.args[0] if e.args else e}"
    if getattr(e, "retryable", False):
        return Outcome("retry", str(error or "token endpoint unavailable"), detail=detail)
    return Outcome("credentials_rejected", str(error or "token refused"), detail=detail)


class FcmClient(HttpOwner):
    """Sends pushes for one Firebase project. Use from one event loop; close with
    `aclose()` (or `async with`)."""

    provider = "fcm"

    def __init__(
        self,
        credentials: FcmCredentials,
        *,
        base_url: str = DEFAULT_URL,
        ca_file: str | None = None,
        http: httpx.AsyncClient | None = None,
    ):
        """`http`: a client to share between apps, made by `transport.http_client`
        with the same `ca_file`; else the client makes and closes its own."""
        self.credentials = credentials
        self.tokens = AccessTokens(credentials, ssl_context(ca_file))
        super().__init__(http, ca_file)
        base = base_url.rstrip("/")
        self.url = f"{base}/v1/projects/{credentials.project_id}/messages:send"

    @classmethod
    def from_settings(cls, credentials: FcmCredentials, settings: Any, **kwargs: Any) -> FcmClient:
        return cls(
            credentials, base_url=settings.fcm_url, ca_file=settings.ca_file or None, **kwargs
        )

    async def send(self, push: Push) -> Outcome:
        body = payloads.fcm_body(push)
        for attempt in (1, 2):
            try:
                token = await self.tokens.get()
            except TokenUnavailable as e:
                return e.outcome
            try:
                response = await self._http.post(
                    self.url,
                    content=body,
                    headers={
                        "authorization": f"Bearer {token}",
                        "content-type": "application/json; charset=utf-8",
                    },
                )
            except httpx.HTTPError as e:
                return network_outcome(e, "FCM")
            if response.status_code == 401 and attempt == 1:
                self.tokens.invalidate(token)  # revoked or expired early: one fresh try
                continue
            break
        return classify(response.status_code, response.content, response.headers.get("retry-after"))

    async def aclose(self) -> None:
        self.tokens.close()
        await super().aclose()


def _error(content: bytes) -> dict:
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _details(error: dict, kind: str) -> list[dict]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and d.get("@type") == kind]


def _names_token(error: dict) -> bool:
    for bad in _details(error, BAD_REQUEST_TYPE):
        for violation in bad.get("fieldViolations") or []:
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                return True
    return "registration token" in str(error.get("message", "")).lower()


def classify(status: int, content: bytes, retry_after: str | None = None) -> Outcome:
    """An FCM answer as an Outcome (FCM's ErrorCode reference)."""
    if status == 200:
        return Outcome("accepted")
    error = _error(content)
    codes = [d.get("errorCode") for d in _details(error, FCM_ERROR_TYPE)]
    code = next((c for c in codes if isinstance(c, str) and c), "")
    reason = code or str(error.get("status") or f"HTTP {status}")
    detail = f"FCM {status}: {error.get('message', '')}"
    if code == "UNREGISTERED" or (status == 404 and _names_token(error)):
        # a 404 that says nothing of the token (a wrong project id, a wrong URL) would
        # otherwise mark every token of the app dead
        return Outcome("invalid_token", code or "UNREGISTERED", detail=detail)
    if code == "SENDER_ID_MISMATCH":
        return Outcome("invalid_token", code, detail=detail)
    if status == 400 and reason == "INVALID_ARGUMENT" and _names_token(error):
        return Outcome("invalid_token", reason, detail=detail)
    if status in (401, 403):
        return Outcome("credentials_rejected", reason, detail=detail)
    if status == 429 or status >= 500:
        return Outcome("retry", reason, retry_after_s(retry_after), detail=detail)
    return Outcome("failed", reason, detail=detail)


__all__ = ["DEFAULT_URL", "SCOPE", "AccessTokens", "FcmClient", "FcmCredentials", "classify"]
