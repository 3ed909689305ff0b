"""Repairs drift between MySQL (what should exist) and RabbitMQ (what does).

- an active device whose queues are missing gets them back, or is marked stale when
  they expired (no activity for longer than the queue expiry);
- a registration that crashed before activation (pending for longer than a grace
  period) is abandoned: its queues are deleted and its row marked deleted;
- queues of deleted or stale devices, and device queues with no row at all, are deleted.

Listing every queue needs `rabbitmqctl` on this host (the broker's own CLI;
`PUSH_RABBITMQCTL` names another, such as the one `make cluster-up` writes for its
cluster); without it, only queues of known rows are checked.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from device_registry.services import route_of
from device_registry.store import Store
from device_registry.topology import Topology
from pushbox_core.names import Names
from pushbox_core.settings import Settings

log = logging.getLogger(__name__)

PENDING_GRACE = timedelta(minutes=10)


@dataclass
class Report:
    recreated: list[str] = field(default_factory=list)
    marked_stale: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    orphan_queues_deleted: list[str] = field(default_factory=list)
    listed_queues: bool = False

    def summary(self) -> str:
        listed = "" if self.listed_queues else " (queues not listed: no rabbitmqctl here)"
        return (
            f"recreated {len(self.recreated)}, marked stale {len(self.marked_stale)},"
            f" abandoned {len(self.abandoned)} pending,"
            f" deleted {len(self.orphan_queues_deleted)} orphan queues{listed}"
        )


def list_device_queues(settings: Settings, names: Names) -> list[str] | None:
    """Every queue of this namespace's devices, from rabbitmqctl; None without it."""
    command = shlex.split(settings.rabbitmqctl)
    ctl = shutil.which(command[0]) if command else None
    if ctl is None:
        return None
    url = settings.broker_urls[0]
    vhost = urllib.parse.unquote(urllib.parse.urlparse(url).path[1:] or "/")
    out = subprocess.run(
        [ctl, *command[1:], "list_queues", "--vhost", vhost, "name", "--no-table-headers"]
        + ["--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [q for q in out.split() if names.device_id_of_queue(q) is not None]


def reconcile(
    *,
    store: Store,
    topology: Topology,
    names: Names,
    settings: Settings,
    queues: list[str] | None,
    now: datetime | None = None,
) -> Report:
    now = now or datetime.now(UTC).replace(tzinfo=None)
    expired_before = now - timedelta(seconds=settings.device_queue_expires_s)
    report = Report(listed_queues=queues is not None)

    for device in store.devices_by_status("active"):
        if topology.exists(device.id):
            continue
        if device.last_active_at < expired_before:
            topology.delete_device(device.id)  # the other lane may linger
            store.set_status(device.id, "stale")
            report.marked_stale.append(device.id)
        else:
            topology.ensure_device(route_of(device))
            report.recreated.append(device.id)

    for device in store.devices_by_status("pending"):
        if device.updated_at < now - PENDING_GRACE:
            topology.delete_device(device.id)
            store.set_status(device.id, "deleted")
            report.abandoned.append(device.id)

    for status in ("deleted", "stale"):
        for device in store.devices_by_status(status):
            queues_left = [q for q in names.device_queues(device.id) if q in (queues or [])]
            if queues is None:  # can't list: probe them
                queues_left = [
                    q
                    for q in names.device_queues(device.id)
                    if topology.rabbit.queue_depth(q) is not None
                ]
            if queues_left:
                topology.delete_queues(queues_left)
                report.orphan_queues_deleted += queues_left

    if queues is not None:
        ids = sorted({names.device_id_of_queue(q) or "" for q in queues} - {""})
        keep = store.known_device_ids(ids)
        orphans = [
            q
            for q in queues
            if names.device_id_of_queue(q) not in keep and q not in report.orphan_queues_deleted
        ]
        if orphans:
            topology.delete_queues(orphans)
            report.orphan_queues_deleted += orphans
    return report
