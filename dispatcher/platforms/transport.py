"""TLS and HTTP/2 for talking to Google and Apple.

Trust is the system's CA certificates plus PUSH_CA_FILE, built into one explicit
`ssl.SSLContext` that every connection uses (httpx for the pushes, urllib3 for Google's
token endpoint). Verification is never switched off, and REQUESTS_CA_BUNDLE cannot
replace the trust store the way it does for `requests` (BASELINE.md, "Traps")."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Self

import httpx

from dispatcher.platforms.push import Outcome

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 15.0
# APNs and FCM multiplex on one connection; httpx queues streams beyond the server's
# limit, so one connection per origin is all a client needs
MAX_CONNECTIONS = 4


def ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The system's CAs (OpenSSL's defaults) plus `ca_file`'s certificates."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


def http_client(ctx: ssl.SSLContext, *, timeout_s: float = READ_TIMEOUT_S) -> httpx.AsyncClient:
    """An HTTP/2 client for one event loop. `trust_env=False`: no proxy, netrc or CA
    setting from the environment changes where or how it connects."""
    return httpx.AsyncClient(
        http2=True,
        verify=ctx,
        trust_env=False,
        timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, keepalive_expiry=300),
    )


class HttpOwner:
    """A platform client's HTTP/2 client: its own, closed with it, unless it was given
    one to share (made by `http_client` with the same CA file)."""

    def __init__(self, http: httpx.AsyncClient | None, ca_file: str | None):
        self._http = http or http_client(ssl_context(ca_file))
        self._owns_http = http is None

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (at - (now or datetime.now(UTC))).total_seconds())


def is_certificate_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLCertVerificationError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def network_outcome(exc: BaseException, what: str) -> Outcome:
    """A request that got no answer. An untrusted certificate is for good (a retry a
    second later meets the same certificate); everything else is worth a retry."""
    if is_certificate_error(exc):
        return Outcome("failed", "certificate not trusted", detail=f"{what}: {exc!r}")
    return Outcome("retry", type(exc).__name__, detail=f"{what}: {exc!r}")


__all__ = [
    "HttpOwner",
    "http_client",
    "is_certificate_error",
    "network_outcome",
    "retry_after_s",
    "ssl_context",
]
