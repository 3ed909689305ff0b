"""Every broker name and Redis key Pushbox uses, prefixed by its namespace.

A device has two lanes, one queue per priority, because a RabbitMQ priority queue with
a length cap drops its highest-priority messages first (see docs/delivery.md). Each
lane has its own exchanges, so a publish reaches exactly one lane per device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LANES = ("high", "normal")  # the order in which sync reads them


@dataclass(frozen=True)
class Names:
    namespace: str
    redis_prefix: str

    # RabbitMQ
    def device_queue(self, device_id: str, lane: str) -> str:
        base = f"{self.namespace}.device.{device_id}"
        return base if lane == "normal" else f"{base}.high"

    def device_queues(self, device_id: str) -> list[str]:
        return [self.device_queue(device_id, lane) for lane in LANES]

    def broadcast_exchange(self, app_id: str, lane: str) -> str:
        base = f"{self.namespace}.app.{app_id}.broadcast"
        return base if lane == "normal" else f"{base}.high"

    def direct_exchange(self, lane: str) -> str:
        base = f"{self.namespace}.direct"
        return base if lane == "normal" else f"{base}.high"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def order_events_queue(self) -> str:
        """Where the dispatcher consumes order events from the orders exchange."""
        return f"{self.namespace}.order-events"

    @property
    def invalid_order_events(self) -> str:
        """Exchange and queue keeping malformed order events for a person to read."""
        return f"{self.namespace}.order-events.invalid"

    @property
    def wake_queue(self) -> str:
        """Wake jobs for the wake worker (dispatcher/platforms)."""
        return f"{self.namespace}.wakes"

    @property
    def events_exchange(self) -> str:
        """Topic exchange where other services hear what happened (pushbox_core.events)."""
        return f"{self.namespace}.events"

    @property
    def device_queue_prefix(self) -> str:
        return f"{self.namespace}.device."

    def device_id_of_queue(self, queue: str) -> str | None:
        """`push.device.7` and `push.device.7.high` -> "7"; anything else -> None."""
        if not queue.startswith(self.device_queue_prefix):
            return None
        rest = queue[len(self.device_queue_prefix) :]
        device_id = rest.removesuffix(".high")
        return device_id if device_id and "." not in device_id else None

    # routing keys on the direct exchanges
    @staticmethod
    def device_key(device_id: str) -> str:
        return f"device.{device_id}"

    @staticmethod
    def user_key(app_id: str, user_id: str) -> str:
        return f"user.{app_id}.{user_id}"

    @staticmethod
    def topic_key(app_id: str, topic: str) -> str:
        return f"topic.{app_id}.{topic}"

    # Redis
    def session_key(self, token_hash: str) -> str:
        return f"{self.redis_prefix}:session:{token_hash}"

    def device_sessions_key(self, device_id: str) -> str:
        return f"{self.redis_prefix}:device-sessions:{device_id}"

    def presence_key(self, device_id: str) -> str:
        return f"{self.redis_prefix}:presence:{device_id}"

    def activity_written_key(self, device_id: str) -> str:
        """Set while the device's MySQL last_active_at is recent enough (sessions.seen)."""
        return f"{self.redis_prefix}:activity-written:{device_id}"

    def rate_key(self, kind: str, who: str) -> str:
        return f"{self.redis_prefix}:rate:{kind}:{who}"

    @property
    def signals_channel(self) -> str:
        """Redis pub/sub: wake-ups for waiting syncs and hand-overs between instances."""
        return f"{self.redis_prefix}:signals"

    def connected_key(self, device_id: str) -> str:
        """Set while the device waits in a sync or has a stream open, on any instance."""
        return f"{self.redis_prefix}:connected:{device_id}"

    def wake_coalesce_key(self, device_id: str) -> str:
        """A silent wake went to this device lately: further ones are dropped."""
        return f"{self.redis_prefix}:wake-coalesce:{device_id}"

    def wake_budget_key(self, device_id: str, hour: int) -> str:
        """Silent APNs pushes to this device in this hour (Apple throttles more than 3)."""
        return f"{self.redis_prefix}:wake-budget:{device_id}:{hour}"

    def holder_key(self, device_id: str) -> str:
        """Which API process holds the messages a device was last given."""
        return f"{self.redis_prefix}:holder:{device_id}"

    def instance_channel(self, instance: str) -> str:
        """Redis pub/sub: requests to one API process to let go of a device."""
        return f"{self.signals_channel}:{instance}"

    # what a signal names, on the signals channel
    @staticmethod
    def wake_device(device_id: str) -> str:
        """Something was sent to this device."""
        return f"d:{device_id}"

    @staticmethod
    def wake_app(app_id: str) -> str:
        """Something was broadcast to this app's devices."""
        return f"a:{app_id}"

    @staticmethod
    def released(device_id: str) -> str:
        """The process that held this device's messages let go of them."""
        return f"r:{device_id}"

    def idempotency_key(self, sender: str, key: str) -> str:
        return f"{self.redis_prefix}:idem:{sender}:{key}"

    # campaigns: RQ job queues, jobs and workers. RQ writes its own keys (rq:queue:<name>,
    # rq:job:<id>, rq:scheduled:<name>, rq:worker:<name>, ...); every name below starts
    # with `<prefix>-campaign` (RQ allows only letters, digits, _ and - in a job id), so a
    # namespace's RQ keys are found by campaign_rq_keys.
    @property
    def _rq_prefix(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "_", self.redis_prefix) + "-campaign"

    def campaign_queue(self, priority: str) -> str:
        """The RQ queue of campaign jobs of one priority (workers read high first)."""
        return f"{self._rq_prefix}s-{priority}"

    def campaign_queues(self) -> list[str]:
        return [self.campaign_queue(p) for p in LANES]

    def campaign_job(self, campaign_id: str) -> str:
        """The RQ job id of a campaign: one job a campaign, so Redis knows it or not."""
        return f"{self._rq_prefix}-{campaign_id}"

    def campaign_worker(self, host: str, pid: int) -> str:
        return f"{self._rq_prefix}s-{host}-{pid}"

    @property
    def campaign_rq_keys(self) -> str:
        """A SCAN pattern for every RQ key of this namespace."""
        return f"rq:*{self._rq_prefix}*"

    # the marketing cap (dispatcher/campaigns/caps.py), per UTC day
    def cap_device_key(self, app_id: str, device_id: str, day: str) -> str:
        """Normal-priority campaign messages this device was given on `day`."""
        return f"{self.redis_prefix}:cap:{app_id}:{device_id}:{day}"

    def cap_broadcasts_key(self, app_id: str, day: str) -> str:
        """Normal-priority broadcasts the app sent on `day`: they count for every device."""
        return f"{self.redis_prefix}:cap-broadcasts:{app_id}:{day}"
