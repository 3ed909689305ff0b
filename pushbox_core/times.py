"""Times on the wire: RFC 3339, UTC, millisecond precision."""

from datetime import UTC, datetime


def rfc3339(at: datetime) -> str:
    """Naive datetimes are UTC: 2026-11-25T04:29:07.123Z."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
