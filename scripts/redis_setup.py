"""What `make up` asks of the Redis Pushbox uses: it holds the campaign job queue, so
it keeps an append-only file (`appendonly yes`, `appendfsync everysec`: at most about
a second of writes lost with the machine) and never evicts keys
(`maxmemory-policy noeviction`: a full Redis refuses writes rather than dropping a
queued job). Set with CONFIG SET on the running server, and written to its
configuration file with CONFIG REWRITE when it was started from one (Debian's
package: /etc/redis/redis.conf), so that a restart keeps them.

Even a lost Redis loses no campaign: the rows in MySQL are the record and the
campaign worker queues again what Redis does not know (docs/campaigns.md)."""

from __future__ import annotations

import redis

WANTED = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}


def ensure_persistence(url: str) -> list[str]:
    """Set what is not set yet; returns sentences saying what was done (or why not)."""
    client = redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)
    said = []
    try:
        changed = []
        for name, value in WANTED.items():
            current = client.config_get(name).get(name)
            if current != value:
                client.config_set(name, value)
                changed.append(f"{name} {value} (was {current})")
        if not changed:
            return [f"Redis at {url}: AOF on (appendfsync everysec), maxmemory-policy noeviction"]
        said.append(f"Redis at {url}: set " + ", ".join(changed))
        config_file = client.info("server").get("config_file") or ""
        if config_file:
            client.config_rewrite()
            said.append(f"  and wrote them to {config_file}")
        else:
            said.append(
                "  (it runs without a configuration file: they last until it restarts;"
                " scripts/install.sh starts it with them)"
            )
    except redis.ResponseError as e:  # CONFIG disabled or renamed (a managed Redis)
        said.append(f"Redis at {url}: could not set persistence ({e}); set {WANTED} yourself")
    except redis.RedisError as e:
        said.append(f"Redis at {url}: not reachable to check persistence ({e})")
    finally:
        client.close()
    return said
