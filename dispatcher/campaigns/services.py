"""Campaigns as the API sees them: create (answered at once, whatever the audience's
size: the fan-out is a job), read, list, cancel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from device_registry.store import Store
from dispatcher import messages
from dispatcher.campaigns.audience import Audience
from dispatcher.campaigns.caps import Caps
from dispatcher.campaigns.jobs import Jobs
from dispatcher.campaigns.store import Campaign, CampaignStore, utc_now
from dispatcher.messages import Content
from dispatcher.services import Dispatch
from pushbox_core.errors import CampaignNotFound, InvalidRequest, PushboxError

LIST_LIMIT_MAX = 100


@dataclass(frozen=True)
class Campaigns:
    """What campaigns need; built once per process (dispatcher.bootstrap)."""

    store: CampaignStore
    jobs: Jobs
    caps: Caps
    registry: Store  # apps (the cap) and devices (repairs)
    dispatch: Dispatch  # publishing, topology, signals, wakes
    chunk_size: int


@dataclass(frozen=True)
class CampaignRequest:
    audience: Audience
    content: Content
    send_at: datetime | None  # naive UTC; None: now


@dataclass(frozen=True)
class Created:
    id: str
    status: str


@dataclass(frozen=True)
class Page:
    campaigns: list[Campaign]
    next_cursor: str | None


def create(app_id: str, req: CampaignRequest, *, c: Campaigns) -> Created:
    """Record the campaign, then queue its job (at send_at, or now). Redis refusing
    the job undoes the row: nothing half-written."""
    messages.build("broadcast", req.content)  # the payload size rule, checked now
    campaign_id = uuid.uuid4().hex
    now = utc_now()
    send_at = req.send_at or now
    status = "scheduled" if send_at > now else "queued"
    priority = req.content.priority or messages.DEFAULT_PRIORITY["broadcast"]
    c.store.insert(campaign_id, app_id, status, priority, req.audience, req.content, send_at)
    try:
        c.jobs.enqueue(campaign_id, priority, send_at)
    except PushboxError:
        c.store.forget(campaign_id)
        raise
    return Created(campaign_id, status)


def get(app_id: str, campaign_id: str, *, c: Campaigns) -> Campaign:
    found = c.store.get(app_id, campaign_id)
    if found is None:
        raise CampaignNotFound(f"no campaign {campaign_id!r} in this app")
    return found


def page(app_id: str, status: str | None, limit: int, cursor: str | None, *, c: Campaigns) -> Page:
    """Newest first; `cursor` is the next_cursor of the page before."""
    before = None
    if cursor is not None:
        if not cursor.isdigit():
            raise InvalidRequest("not a cursor this API gave", field="cursor")
        before = int(cursor)
    found = c.store.page(app_id, status, limit + 1, before)
    more = len(found) > limit
    found = found[:limit]
    return Page(found, str(found[-1].seq) if more else None)


def cancel(app_id: str, campaign_id: str, *, c: Campaigns) -> Campaign:
    """Before it starts nothing is sent; while it runs it stops after the chunk in
    hand (what was published stays). A finished campaign is left as it is. Other
    services hear `campaign.finished` with its counters as they stand at the cancel,
    as they do when a campaign ends otherwise."""
    cancelled = c.store.cancel(app_id, campaign_id)
    if cancelled:
        c.jobs.cancel(campaign_id)
    found: Campaign | None = None
    try:
        found = get(app_id, campaign_id, c=c)
        return found
    finally:  # told even if reading it back failed (then without counters)
        if cancelled:
            counts = found.counters() if found is not None else {}
            c.dispatch.events.campaign_finished(app_id, campaign_id, "cancelled", **counts)
