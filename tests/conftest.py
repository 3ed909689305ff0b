"""Test fixtures: every run gets its own namespace (database, broker prefix, Redis
prefix), cleaned up at the end, against the machine's real MySQL, RabbitMQ and Redis.

`client` is an in-process Flask client; `stack` is the real thing, nginx in front of
two gunicorn instances, as a phone meets it."""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pika
import pytest
import redis
import requests

from push_api.app import create_app
from pushbox_core.names import Names
from pushbox_core.schema import drop_database, migrate
from pushbox_core.sealing import new_key
from pushbox_core.settings import Settings
from scripts.stack import Stack

# the stand-ins of FCM and APNs: standin_ca, fcm_server, apns_server, fcm_standin, ...
pytest_plugins = ["tests.standins.fixtures"]

STACK_BACKLOG_MAX = 10_000

START = {
    "MySQL": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    "RabbitMQ": "rabbitmq-server -detached",
    "Redis": "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save ''",
}


def _require(name: str, host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        pytest.exit(f"{name} is not answering on {host}:{port}; start it: {START[name]}", 3)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="session")
def settings(standin_ca, fcm_server, apns_server) -> Iterator[Settings]:
    run = secrets.token_hex(4)
    base = Settings.from_env()
    s = replace(
        base,
        # platform pushes go to the local stand-ins of FCM and APNs (tests/standins),
        # trusted through the stand-ins' own CA, as PUSH_CA_FILE would be set
        secrets_key=new_key(),
        fcm_url=fcm_server.url,
        apns_url=apns_server.url,
        apns_sandbox_url=apns_server.url,
        ca_file=str(standin_ca.ca_file),
        # the machine's broker, whatever a shell exported after `make cluster-up`:
        # the cluster tests (tests/test_cluster.py) start a cluster of their own
        rabbitmq_urls="",
        queue_type="classic",
        rabbitmqctl="rabbitmqctl",
        namespace=f"pbt{run}",
        redis_prefix=f"pbt{run}",
        mysql_database=f"pushbox_test_{run}",
        orders_exchange=f"pbt{run}.orders",
        admin_token="adm_" + secrets.token_urlsafe(16),
        # tests register many devices from one address; the limits have their own tests
        rate_registration_per_s=100_000,
        rate_registration_burst=100_000,
        rate_device_per_s=100_000,
        rate_device_burst=100_000,
        rate_server_key_per_s=100_000,
        rate_server_key_burst=100_000,
    )
    _require("MySQL", s.mysql_host, s.mysql_port)
    _require("RabbitMQ", "127.0.0.1", 5672)
    _require("Redis", "127.0.0.1", 6379)
    migrate(s)
    yield s
    drop_database(s)
    forget_namespace(s)


@contextlib.contextmanager
def namespace_of_its_own(settings: Settings, suffix: str, **changes) -> Iterator[Settings]:
    """`settings` with names of their own (broker namespace, Redis prefix, database,
    orders exchange: each with `suffix`), migrated; all of it removed after."""
    s = replace(
        settings,
        namespace=settings.namespace + suffix,
        redis_prefix=settings.redis_prefix + suffix,
        mysql_database=f"{settings.mysql_database}_{suffix}",
        orders_exchange=settings.orders_exchange + suffix,
        **changes,
    )
    migrate(s)
    try:
        yield s
    finally:
        drop_database(s)
        forget_namespace(s)


@contextlib.contextmanager
def api_of(settings: Settings):
    """The Flask app on these settings, its collaborators closed after."""
    flask_app = create_app(settings)
    try:
        yield flask_app
    finally:
        flask_app.extensions["pushbox"].close()


def forget_namespace(s: Settings) -> None:
    """Everything under the namespace of `s` in RabbitMQ and Redis (its database
    aside): what a run leaves behind."""
    _clean_broker(s)
    _clean_redis(s)


def _clean_broker(s: Settings) -> None:
    prefix = s.namespace + "."
    conn = pika.BlockingConnection(pika.URLParameters(s.rabbitmq_url))
    ch = conn.channel()
    for kind in ("queues", "exchanges"):
        out = subprocess.run(
            ["rabbitmqctl", f"list_{kind}", "name", "--no-table-headers", "--quiet"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for name in out.split():
            if name.startswith(prefix) or name == s.orders_exchange:
                if kind == "queues":
                    ch.queue_delete(name)
                else:
                    ch.exchange_delete(name)
    conn.close()


def _clean_redis(s: Settings) -> None:
    r = redis.Redis.from_url(s.redis_url)
    names = Names(s.namespace, s.redis_prefix)
    keys = list(r.scan_iter(match=f"{s.redis_prefix}:*", count=1000))
    keys += list(r.scan_iter(match=names.campaign_rq_keys, count=1000))  # RQ's, of campaigns
    for i in range(0, len(keys), 500):
        r.delete(*keys[i : i + 500])
    r.close()


@pytest.fixture(scope="session")
def names(settings: Settings) -> Names:
    return Names(settings.namespace, settings.redis_prefix)


@pytest.fixture(scope="session")
def app(settings: Settings):
    with api_of(settings) as flask_app:
        yield flask_app


@pytest.fixture
def client(app):
    return app.test_client()


def settings_env(s: Settings) -> dict[str, str]:
    import os
    from dataclasses import fields

    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSH_")}
    for f in fields(s):
        env["PUSH_" + f.name.upper()] = str(getattr(s, f.name))
    return env


@dataclass(frozen=True)
class RunningStack:
    base: str  # nginx
    instances: tuple[str, ...]  # each push_api instance, directly


@contextlib.contextmanager
def stack_of_its_own(env: dict[str, str], *, spread_nodes: bool = True) -> Iterator[Stack]:
    """A Stack in a temporary run directory, on free ports: down at the end, up when
    the caller says."""
    with tempfile.TemporaryDirectory(prefix="pushbox-test-") as run_dir:
        path = Path(run_dir)
        path.chmod(0o755)
        st = Stack(
            path,
            env,
            nginx_port=free_port(),
            api_ports=(free_port(), free_port()),
            spread_nodes=spread_nodes,
        )
        try:
            yield st
        finally:
            st.down()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[RunningStack]:
    """nginx in front of two push_api instances, on ports of their own."""
    # a bigger backlog cap for devices registered through the stack: the
    # 10,000-message drain needs it (the cap itself is tested in-process)
    with stack_of_its_own(
        settings_env(replace(settings, device_backlog_max=STACK_BACKLOG_MAX))
    ) as st:
        st.up()
        yield RunningStack(
            f"http://127.0.0.1:{st.nginx_port}",
            tuple(f"http://127.0.0.1:{p}" for p in st.api_ports),
        )


@pytest.fixture(scope="session")
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture
def rabbit_channel(settings: Settings):
    conn = pika.BlockingConnection(pika.URLParameters(settings.rabbitmq_url))
    yield conn.channel()
    with contextlib.suppress(Exception):
        conn.close()
