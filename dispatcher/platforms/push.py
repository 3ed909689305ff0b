"""One platform push for one device, and what became of it.

`Push` is what the wake worker hands a client; `Outcome` is what every client answers,
never an exception: the worker decides from `result` alone (DESIGN, "Failure")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from pushbox_core.errors import InvalidRequest

Provider = Literal["fcm", "apns"]
Mode = Literal["alert", "silent"]
Result = Literal["accepted", "invalid_token", "retry", "credentials_rejected", "failed"]

RESULTS: tuple[Result, ...] = (
    "accepted",  # the platform took it: counts as `woken`
    "invalid_token",  # the token is dead: mark it invalid with `reason`, never use it again
    "retry",  # transient (429, 5xx, network): try again after `retry_after_s` or a backoff
    "credentials_rejected",  # Google or Apple refused the app's key: mark it rejected
    "failed",  # refused for good, for this push only
)


@dataclass(frozen=True)
class Push:
    provider: Provider
    token: str
    token_registered_at: datetime  # naive means UTC; APNs 410 answers are compared to it
    mode: Mode
    message_id: str
    message_kind: str  # broadcast | notification
    title: str | None = None
    body: str | None = None
    data: dict | None = None
    collapse_key: str | None = None
    ttl_s: int | None = None  # seconds from now the platform may hold it; None: its default
    private: bool = False  # app setting push_content=private: no content in clear

    def __post_init__(self) -> None:
        if self.provider not in ("fcm", "apns"):
            raise ValueError(f"provider must be fcm or apns, not {self.provider!r}")
        if self.mode not in ("alert", "silent"):
            raise ValueError(f"mode must be alert or silent, not {self.mode!r}")

    def registered_at_s(self) -> float:
        at = self.token_registered_at
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return at.timestamp()


@dataclass(frozen=True)
class Outcome:
    result: Result
    reason: str = ""  # the platform's own word: UNREGISTERED, BadDeviceToken, ...
    retry_after_s: float | None = None  # what the platform asked for (Retry-After)
    detail: str = ""  # for logs: the platform's message, never shown to a client

    @property
    def accepted(self) -> bool:
        return self.result == "accepted"


class PlatformClient(Protocol):
    """What `deliver` and the wake worker need of a client (FcmClient, ApnsClient)."""

    provider: Provider

    async def send(self, push: Push) -> Outcome: ...

    async def aclose(self) -> None: ...


class CredentialsInvalid(InvalidRequest):
    """Uploaded credentials of the wrong shape (422 naming `field`)."""


__all__ = [
    "RESULTS",
    "CredentialsInvalid",
    "Mode",
    "Outcome",
    "PlatformClient",
    "Provider",
    "Push",
    "Result",
]
