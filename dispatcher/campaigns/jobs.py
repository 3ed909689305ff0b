"""Campaign jobs on Redis, with RQ: the brief's job queue (lists read by blocking
workers in priority order, a hash per job with its status, scheduled jobs moved to
their list when due by the worker's scheduler), written by a well-kept library
rather than again here.

One job a campaign, its id derived from the campaign's (names.campaign_job), in the
RQ queue of its priority: the campaign worker reads `<prefix>.campaigns.high` before
`<prefix>.campaigns.normal`. Transactional work (notifications, order events) never
goes through these queues, so it never waits behind a campaign.

RQ keeps its own key layout (`rq:...`) and pickles job data, so it gets its own Redis
client, without the decoded responses the rest of Pushbox uses."""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta

import redis
from rq import Queue, Retry
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.worker import Worker

from pushbox_core.names import Names
from pushbox_core.redis_client import redis_errors

log = logging.getLogger(__name__)

JOB_FUNCTION = "dispatcher.campaigns.fanout.run_job"
JOB_TIMEOUT_S = 24 * 3600  # a campaign to millions of devices runs for a long time
RESULT_KEEP_S = 3600  # RQ's results expire; the campaign's row is the record
FAILURE_KEEP_S = 7 * 86_400
# a job that failed for want of MySQL, RabbitMQ or Redis is tried again after these
# (seconds); it goes on from the last chunk counted
RETRY_INTERVALS_S = [5, 15, 30, 60, 120, 300]


class Jobs:
    def __init__(self, redis_url: str, names: Names):
        self.names = names
        self._url = redis_url
        self._client: redis.Redis | None = None
        self._pid = 0

    @property
    def connection(self) -> redis.Redis:
        """RQ's own client (bytes, not decoded), made on first use and again in a child."""
        if self._client is None or self._pid != os.getpid():
            self._client = redis.Redis.from_url(
                self._url, socket_timeout=10, socket_connect_timeout=2, health_check_interval=30
            )
            self._pid = os.getpid()
        return self._client

    def queue(self, priority: str) -> Queue:
        return Queue(self.names.campaign_queue(priority), connection=self.connection)

    def queues(self) -> list[Queue]:
        """In the order a worker reads them: high before normal."""
        return [Queue(name, connection=self.connection) for name in self.names.campaign_queues()]

    def enqueue(self, campaign_id: str, priority: str, send_at: datetime | None) -> None:
        """Queue the campaign's job now, or at `send_at` (naive UTC) when that is ahead.
        Raises CacheUnavailable when Redis can't take it."""
        q = self.queue(priority)
        options = dict(
            job_id=self.names.campaign_job(campaign_id),
            job_timeout=JOB_TIMEOUT_S,
            result_ttl=RESULT_KEEP_S,
            failure_ttl=FAILURE_KEEP_S,
            retry=Retry(max=len(RETRY_INTERVALS_S), interval=RETRY_INTERVALS_S),
            description=f"campaign {campaign_id}",
        )
        with redis_errors():
            if send_at is not None and send_at > datetime.now(UTC).replace(tzinfo=None):
                q.enqueue_at(_whole_second_after(send_at), JOB_FUNCTION, campaign_id, **options)
            else:
                q.enqueue(JOB_FUNCTION, campaign_id, **options)

    def cancel(self, campaign_id: str) -> None:
        """Best effort: take the job off its queue or schedule. The job checks the
        campaign's row anyway, so a job left behind sends nothing."""
        try:
            job = Job.fetch(self.names.campaign_job(campaign_id), connection=self.connection)
            if job.get_status() in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
                job.cancel()
        except (NoSuchJobError, InvalidJobOperation):
            pass
        except (redis.RedisError, OSError) as e:
            log.warning("campaign %s cancelled; its job stays in Redis (%s)", campaign_id, e)

    def knows(self, campaign_id: str, priority: str) -> bool:
        """Does Redis still hold the campaign's job: queued, scheduled, or in the hands
        of a worker that lives? Raises CacheUnavailable."""
        job_id = self.names.campaign_job(campaign_id)
        with redis_errors():
            try:
                job = Job.fetch(job_id, connection=self.connection)
            except NoSuchJobError:
                return False
            status = job.get_status()
            if status == JobStatus.QUEUED:
                return self.connection.lpos(self.queue(priority).key, job_id) is not None
            if status == JobStatus.SCHEDULED:
                return job_id in ScheduledJobRegistry(queue=self.queue(priority))
            if status == JobStatus.STARTED:
                return self._worker_lives(job.worker_name)
            return False  # finished, failed, stopped, cancelled: not running any more

    def _worker_lives(self, worker_name: str | None) -> bool:
        """A worker killed outright leaves its registration until it expires: on this
        host, its pid tells."""
        if not worker_name:
            return False
        key = Worker.redis_worker_namespace_prefix + worker_name
        host, pid = self.connection.hmget(key, ["hostname", "pid"])
        if host is None:
            return False
        if _text(host) == socket.gethostname() and pid:
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True

    def worker(self) -> Worker:
        """An RQ worker for this namespace's campaign queues, high first."""
        return Worker(
            self.queues(),
            name=self.names.campaign_worker(socket.gethostname(), os.getpid()),
            connection=self.connection,
        )

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None


def _whole_second_after(at: datetime) -> datetime:
    """RQ keeps a scheduled job's time in whole seconds, cut down (measured: a job for
    29.651 s ran at 29.597 s): rounded up instead, it never runs before its send_at."""
    up = at.replace(microsecond=0) + (timedelta(seconds=1) if at.microsecond else timedelta())
    return up.replace(tzinfo=UTC)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
