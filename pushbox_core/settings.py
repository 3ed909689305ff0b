"""Settings, read from the environment once and passed down explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

DAY_S = 86_400


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


@dataclass(frozen=True)
class Settings:
    namespace: str = "push"
    admin_token: str = ""

    mysql_host: str = "127.0.0.1"
    mysql_port: int = 3306
    mysql_user: str = "root"
    mysql_password: str = ""
    mysql_database: str = "pushbox"

    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    # the nodes of one cluster, comma-separated, in the order a process tries them
    # (`make up` gives each program its own order): overrides rabbitmq_url
    rabbitmq_urls: str = ""
    rabbitmqctl: str = "rabbitmqctl"  # the broker's CLI (the reconciler lists queues)
    orders_exchange: str = "orders"
    queue_type: str = "classic"  # classic (v1) or quorum
    device_backlog_max: int = 1_000  # messages per lane
    device_queue_expires_s: int = 30 * DAY_S

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = ""  # defaults to the namespace

    session_ttl_s: int = DAY_S

    rate_device_per_s: float = 10
    rate_device_burst: int = 20
    rate_server_key_per_s: float = 1_000
    rate_server_key_burst: int = 2_000
    rate_registration_per_s: float = 50
    rate_registration_burst: int = 200

    max_request_bytes: int = 64 * 1024
    max_batch_request_bytes: int = 3 * 1024 * 1024  # 500 notifications of up to 4 KiB

    # Fernet keys, comma-separated: the first seals, all open (rotation: see docs/wakes.md)
    secrets_key: str = ""

    # waking apps through the platforms (DESIGN "Waking apps in the background")
    fcm_url: str = "https://fcm.googleapis.com"
    apns_url: str = "https://api.push.apple.com"  # environment: production
    apns_sandbox_url: str = "https://api.sandbox.push.apple.com"  # environment: sandbox
    ca_file: str = ""  # extra CA certificates trusted for those, on top of the system's
    wake_coalesce_s: int = 30

    # where GET /metrics reads every process's values (docs/metrics.md); default: this
    # process's own PROMETHEUS_MULTIPROC_DIR
    metrics_dir: str = ""

    # campaigns (DESIGN "Campaigns and bulk sends"): devices a fan-out chunk publishes to
    campaign_chunk_size: int = 1_000

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Every field from PUSH_<FIELD_NAME>, else its default."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get("PUSH_" + f.name.upper())
            if raw is None or raw == "":
                continue
            kind = type(f.default)
            values[f.name] = kind(raw) if kind in (int, float) else raw
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        if not settings.redis_prefix:
            settings = replace(settings, redis_prefix=settings.namespace)
        if settings.queue_type not in ("classic", "quorum"):
            raise ValueError("PUSH_QUEUE_TYPE must be classic or quorum")
        for url in settings.broker_urls:
            if not url.startswith(("amqp://", "amqps://")):
                raise ValueError("PUSH_RABBITMQ_URLS: each must be an amqp:// or amqps:// URL")
        return settings

    @property
    def broker_urls(self) -> tuple[str, ...]:
        """The broker's nodes, in the order this process tries them."""
        urls = tuple(u.strip() for u in self.rabbitmq_urls.split(",") if u.strip())
        return urls or (self.rabbitmq_url,)


__all__ = ["DAY_S", "Settings"]
