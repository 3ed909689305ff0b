"""A campaign's fan-out: the job the campaign worker runs (`run_job`, by RQ).

Chunks of `PUSH_CAMPAIGN_CHUNK_SIZE` devices (1,000), selected by key range (device
ids above the last chunk counted, in id order, over the (app_id, status, id) index).
For each chunk: the marketing cap decides who gets it, every message goes out under
the campaign's id with all its confirms in flight, then one transaction counts the
chunk and moves the cursor past it (dispatcher/campaigns/store.py). A worker killed
between publishing and counting runs that chunk again after its restart: the devices
get a second copy of the same id (the SDK dedupes), and it is counted once.

The campaign's row is read before each chunk: once it says cancelled, nothing more
goes out."""

from __future__ import annotations

import logging

from rq import get_current_job

from dispatcher.campaigns.services import Campaigns
from dispatcher.campaigns.store import Campaign, Target
from dispatcher.messages import Message
from dispatcher.platforms.wake_jobs import WakeJob, wake_mode
from dispatcher.services import repair_topology
from pushbox_core.errors import BrokerUnavailable, DependencyDown, NotDelivered, PushboxError
from pushbox_core.events import CAMPAIGN_FINISHED
from pushbox_core.names import Names
from pushbox_core.rabbit import Outgoing

log = logging.getLogger("campaigns")

_campaigns: Campaigns | None = None  # set by the worker before it forks work horses


def configure(campaigns: Campaigns) -> None:
    global _campaigns
    _campaigns = campaigns


def run_job(campaign_id: str) -> str:
    """The RQ job. A dependency that is down fails it, and RQ tries it again later
    (jobs.RETRY_INTERVALS_S); when no try is left, or for any other error, the
    campaign is marked failed."""
    c = _campaigns
    if c is None:
        raise RuntimeError("the campaign worker did not configure the fan-out")
    try:
        return run(campaign_id, c=c)
    except DependencyDown as e:
        job = get_current_job()
        if job is not None and job.retries_left:
            log.warning("campaign %s: %s; tried again later", campaign_id, e.detail or e)
            raise
        _fail(campaign_id, str(e), c=c)
        raise
    except Exception:
        log.exception("campaign %s failed", campaign_id)
        _fail(campaign_id, "internal error", c=c)
        raise


def _fail(campaign_id: str, why: str, *, c: Campaigns) -> None:
    try:
        c.store.fail(campaign_id, why)
        failed = c.store.get(None, campaign_id)
    except PushboxError as e:  # the reconciler queues it again: it goes on from its cursor
        log.warning("campaign %s failed (%s) and could not be marked so: %s", campaign_id, why, e)
        return
    if failed is not None and failed.status == "failed":
        finished(failed.app_id, campaign_id, "failed", c=c)


def run(campaign_id: str, *, c: Campaigns) -> str:
    """Fan the campaign out from where it stands; returns its status after."""
    campaign = c.store.start(campaign_id)
    if campaign is None:
        return c.store.status_of(campaign_id) or "gone"
    message = campaign.message()
    after = campaign.cursor_id
    log.info("campaign %s: %s targets, from device %d", campaign_id, campaign.targets, after)
    while True:
        status = c.store.status_of(campaign_id)
        if status != "running":
            log.info("campaign %s: %s; stopping", campaign_id, status)
            return status or "gone"
        targets = c.store.chunk(campaign.app_id, campaign.audience, after, c.chunk_size)
        if not targets:
            break
        published, capped = publish_chunk(campaign, message, targets, c=c)
        last = targets[-1].device_id
        if not c.store.count_chunk(campaign_id, after, last, published, capped):
            log.info("campaign %s: chunk after %d was counted already", campaign_id, after)
        after = last
    if c.store.finish(campaign_id):
        finished(campaign.app_id, campaign_id, "done", c=c)
    log.info("campaign %s: done", campaign_id)
    return "done"


def finished(app_id: str, campaign_id: str, status: str, *, c: Campaigns) -> None:
    """Tell other services (`campaign.finished` on <ns>.events), with its counters. The
    job runs in a work horse that ends with it: the event goes out before."""
    try:
        got = c.store.get(app_id, campaign_id)
        counts = got.counters() if got else {}
        c.dispatch.events.emit_now(
            CAMPAIGN_FINISHED, app_id, campaign_id=campaign_id, status=status, **counts
        )
    except PushboxError as e:
        log.warning("campaign %s: %s, not told to other services: %s", campaign_id, status, e)


def publish_chunk(
    campaign: Campaign, message: Message, targets: list[Target], *, c: Campaigns
) -> tuple[int, int]:
    """Publish to these devices what the cap allows; (published, capped). Raises
    BrokerUnavailable when the broker did not confirm them all."""
    d = c.dispatch
    given = targets
    if message.priority == "normal":
        app = c.registry.app(campaign.app_id)
        cap = app.marketing_cap_per_day if app is not None else None
        allowed = c.caps.judge(campaign.app_id, campaign.id, [t.device_id for t in targets], cap)
        given = [t for t, ok in zip(targets, allowed, strict=True) if ok]
    sent = _publish(campaign, message, given, c=c)
    if sent:
        d.signals.wake_devices_now([str(t.device_id) for t in sent])
        mode = wake_mode(campaign.content)
        wakeable = [str(t.device_id) for t in sent if t.wakeable]
        if wakeable and mode != "none":
            d.wakes.request(WakeJob.of(campaign.app_id, message, mode, wakeable))
    return len(sent), len(targets) - len(given)


def _publish(
    campaign: Campaign, message: Message, targets: list[Target], *, c: Campaigns
) -> list[Target]:
    """Every message with its confirm in flight; a device whose queue is gone gets it
    back (as a single send would) and one more try. Returns the devices it reached."""
    d = c.dispatch
    exchange = d.names.direct_exchange(message.priority)
    body, headers = message.encode(), message.headers()

    def outgoing(t: Target) -> Outgoing:
        return Outgoing(
            exchange,
            Names.device_key(str(t.device_id)),
            body,
            message.id,
            headers=headers,
            expiration_ms=message.ttl_s * 1000,
        )

    outcomes = d.rabbit.publish_many([outgoing(t) for t in targets])
    _raise_unconfirmed(outcomes)
    missing = [t for t, o in zip(targets, outcomes, strict=True) if isinstance(o, NotDelivered)]
    if missing:
        back = set(repair_topology(campaign.app_id, [str(t.device_id) for t in missing], d=d))
        repaired = [t for t in missing if str(t.device_id) in back]
        again = d.rabbit.publish_many([outgoing(t) for t in repaired])
        _raise_unconfirmed(again)
        lost = {t.device_id for t, o in zip(repaired, again, strict=True) if o is not None}
        lost |= {t.device_id for t in missing if t not in repaired}
        if lost:
            log.warning("campaign %s: no queue for devices %s", campaign.id, sorted(lost))
        return [t for t in targets if t.device_id not in lost]
    return targets


def _raise_unconfirmed(outcomes: list[PushboxError | None]) -> None:
    for o in outcomes:
        if isinstance(o, BrokerUnavailable):  # DeliveryUnknown too: the chunk runs again
            raise BrokerUnavailable(o.detail)
