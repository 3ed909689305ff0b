"""Campaigns whose job Redis lost: MySQL says scheduled, queued or running, Redis
holds no such job (Redis flushed or lost, a job dropped, a worker killed outright with
the job in hand). Each is queued again, at its send_at when that is still ahead; a
running one goes on from the last chunk it counted. Run by `make reconcile` and by
the campaign worker when it starts."""

from __future__ import annotations

import logging

from dispatcher.campaigns.services import Campaigns

log = logging.getLogger("campaigns")


def requeue_lost(*, c: Campaigns) -> list[str]:
    """Queue again every unfinished campaign Redis does not know; returns their ids."""
    requeued = []
    for campaign in c.store.unfinished():
        if c.jobs.knows(campaign.id, campaign.priority):
            continue
        c.jobs.enqueue(campaign.id, campaign.priority, campaign.send_at)
        log.info(
            "campaign %s (%s): its job was lost; queued again", campaign.id, campaign.stored_status
        )
        requeued.append(campaign.id)
    return requeued
