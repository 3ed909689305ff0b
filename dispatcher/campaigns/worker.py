"""The campaign worker (`python -m dispatcher.campaigns`): an RQ worker reading this
namespace's campaign queues, high before normal, with RQ's scheduler (jobs queued for
a send_at are moved to their queue when due).

RQ forks a work horse for each job: the job runs in a fresh process (outside gevent:
nothing here is patched), whose connections are its own (pushbox_core's pools notice
the fork). At start, before taking any job, the worker queues again what Redis lost
(dispatcher/campaigns/reconciler.py).

    python -m dispatcher.campaigns [work]   # the worker (make up runs it)
    python -m dispatcher.campaigns reconcile  # what `make reconcile` runs
"""

from __future__ import annotations

import argparse
import logging
import time

from dispatcher.bootstrap import bootstrap
from dispatcher.campaigns import fanout
from dispatcher.campaigns.reconciler import requeue_lost
from pushbox_core.errors import DependencyDown
from pushbox_core.settings import Settings

log = logging.getLogger("campaigns")

RECONCILE_RETRY_MAX_S = 10.0


def work(settings: Settings) -> int:
    pushbox = bootstrap(settings, role="campaigns")
    c = pushbox.campaigns
    fanout.configure(c)
    delay = 0.5
    while True:  # MySQL or Redis down at start: wait for them
        try:
            requeued = requeue_lost(c=c)
            break
        except DependencyDown as e:
            log.warning("reconciling campaigns: %s; again in %.1fs", e, delay)
            time.sleep(delay)
            delay = min(delay * 2, RECONCILE_RETRY_MAX_S)
    if requeued:
        log.info("queued again %d campaigns Redis had lost", len(requeued))
    worker = c.jobs.worker()
    log.info("consuming %s (scheduler on)", ", ".join(q.name for q in worker.queues))
    worker.work(with_scheduler=True, logging_level="INFO")
    pushbox.close()
    return 0


def reconcile(settings: Settings) -> int:
    pushbox = bootstrap(settings, role="reconciler")
    try:
        requeued = requeue_lost(c=pushbox.campaigns)
    finally:
        pushbox.close()
    print(
        f"campaigns: {len(requeued)} queued again"
        + (f" ({', '.join(requeued)})" if requeued else "")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dispatcher.campaigns")
    parser.add_argument("command", nargs="?", default="work", choices=["work", "reconcile"])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    settings = Settings.from_env()
    return work(settings) if args.command == "work" else reconcile(settings)
