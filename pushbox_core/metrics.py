"""Every Prometheus metric Pushbox exports, defined once, and the few functions the
other packages call to move them (docs/metrics.md lists them all).

prometheus_client runs in its multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set
before it is imported (`make up` sets it for every program to `<run dir>/metrics`,
emptied at each start): each process (every gunicorn worker, the dispatcher, the wake
worker) writes its values to files of its own there, and a scrape of any API instance
adds up the files of all of them (`collect`). Without it (tests in one process, a
shell) the metrics live in this process's default registry.

Gauges say how they add up across processes: `livesum` for what live processes hold
now (a dead worker's file is removed: gunicorn's child_exit hook, and `collect` for
processes that died without one); `mostrecent` for a value one process sets for the
whole system (campaigns by status).

A process that forks workers of its own (a job runner) records in the parent only: a
short-lived child would leave a file per pid behind.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from pushbox_core.errors import (
    BrokerUnavailable,
    CacheUnavailable,
    DatabaseUnavailable,
    DependencyDown,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# seconds; an API answer is usually a few ms, a waiting sync up to 30 s
LATENCY_BUCKETS_S = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter(
    "pushbox_http_requests_total",
    "HTTP requests answered, by URL rule, method and status",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "pushbox_http_request_seconds",
    "Time to answer an HTTP request (a waiting sync included), by URL rule and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS_S,
)
SEND_SECONDS = Histogram(
    "pushbox_send_seconds",
    "Time of a send until the broker confirmed it (broadcast or notification)",
    ["kind"],
    buckets=LATENCY_BUCKETS_S,
)
SYNC_SECONDS = Histogram(
    "pushbox_sync_seconds",
    "Time a sync spends acking and reading the device's queues (its wait left out)",
    buckets=LATENCY_BUCKETS_S,
)
STREAM_SECONDS = Histogram(
    "pushbox_stream_delivery_seconds",
    "Time from a message's send to its frame on an open stream, for messages sent while"
    " the stream was open (a backlog's age is the phone's time away)",
    buckets=LATENCY_BUCKETS_S,
)
WAITING_DEVICES = Gauge(
    "pushbox_waiting_devices",
    "Syncs waiting for a message now (long polls), over every API process",
    multiprocess_mode="livesum",
)
STREAMING_DEVICES = Gauge(
    "pushbox_streaming_devices",
    "Open device streams (WebSockets) now, over every API process",
    multiprocess_mode="livesum",
)
WAKES = Counter(
    "pushbox_wakes_total",
    "Platform pushes (FCM, APNs) by provider and result",
    ["provider", "result"],
)
CAMPAIGNS = Gauge(
    "pushbox_campaigns",
    "Campaigns by status, as last counted",
    ["status"],
    multiprocess_mode="mostrecent",
)
DEPENDENCY_ERRORS = Counter(
    "pushbox_dependency_errors_total",
    "Times MySQL, RabbitMQ or Redis could not be reached (a request failed with 503,"
    " a worker reconnected, an event could not be published)",
    ["dependency"],
)
EVENTS = Counter(
    "pushbox_events_total",
    "Events published to <ns>.events (confirmed), by event",
    ["event"],
)

DEPENDENCIES = {
    BrokerUnavailable: "rabbitmq",
    DatabaseUnavailable: "mysql",
    CacheUnavailable: "redis",
}


# ---- what other packages call
def dependency_failed(error: DependencyDown | str) -> None:
    """Count one failure to reach a dependency (an exception, or its name)."""
    if isinstance(error, str):
        name = error
    else:
        name = next((n for t, n in DEPENDENCIES.items() if isinstance(error, t)), "other")
    DEPENDENCY_ERRORS.labels(name).inc()


def waiting():
    """While a sync waits for a message (a context manager)."""
    return WAITING_DEVICES.track_inprogress()


def streaming():
    """While a device's stream is open (a context manager): the live stream wraps each
    connection in it."""
    return STREAMING_DEVICES.track_inprogress()


def stream_delivered(seconds: float) -> None:
    """A message sent while the stream was open reached it `seconds` after its send."""
    STREAM_SECONDS.observe(seconds)


def set_campaigns(by_status: dict[str, int]) -> None:
    """The number of campaigns in each status, counted by whoever runs them (from the
    parent process, never a forked job child)."""
    for status, n in by_status.items():
        CAMPAIGNS.labels(status).set(n)


# ---- the multiprocess directory
def multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def fresh_dir(path: Path) -> None:
    """Empty (or make) a multiprocess directory: before any process of a stack starts,
    so that no value of an earlier run is added to this one's."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def process_exited(pid: int) -> None:
    """A process of this stack ended: its live gauges no longer count."""
    path = multiproc_dir()
    if path:
        mark_process_dead(pid, path)


def _forget_dead(path: str) -> None:
    """Live gauges of processes that died without child_exit (killed with their
    master): their files say nothing live any more. Only pids of this machine's own
    PID namespace are judged (one directory per container: see docker-compose.yml)."""
    for f in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = f.rsplit("_", 1)[1].removesuffix(".db")
        if pid.isdigit() and not _alive(int(pid)):
            mark_process_dead(int(pid), path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _EveryDirectory(MultiProcessCollector):
    """Every process's files under `root`, in its subdirectories too (docker compose
    gives each container a directory of its own under one shared volume)."""

    def __init__(self, root: str):
        self._root = root  # not registered: collect() is called by one scrape

    def collect(self):
        _forget_dead(self._root)
        files = glob.glob(os.path.join(self._root, "**", "*.db"), recursive=True)
        return self.merge(files, accumulate=True)


def collect(root: str | None = None) -> bytes:
    """The Prometheus text of every process (multiprocess mode) or of this one."""
    root = root or multiproc_dir()
    if not root:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    registry.register(_EveryDirectory(root))
    return generate_latest(registry)
