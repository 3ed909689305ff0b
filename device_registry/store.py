"""Apps, devices and topic subscriptions in MySQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pymysql

from pushbox_core.batching import Batcher
from pushbox_core.errors import DatabaseUnavailable
from pushbox_core.mysql import Database

DEVICE_FIELDS = ("platform", "user_id", "locale", "app_version")


@dataclass(frozen=True)
class App:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Device:
    id: str
    app_id: str
    installation_id: str
    secret_hash: str
    platform: str
    user_id: str | None
    locale: str | None
    app_version: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    last_active_at: datetime
    topics: tuple[str, ...] = field(default=())

    @property
    def active(self) -> bool:
        return self.status == "active"


def _app(row: dict) -> App:
    return App(id=str(row["id"]), name=row["name"], created_at=row["created_at"])


_DEVICE_COLUMNS = (
    "id, app_id, installation_id, secret_hash, platform, user_id, locale, app_version,"
    " status, created_at, updated_at, last_active_at"
)


SERVER_KEY_CACHE_S = 60.0  # apps are never deleted; a key lookup is on every send


class Store:
    def __init__(self, db: Database):
        self.db = db
        self._apps_by_server_key: dict[str, tuple[App, float]] = {}
        # every send checks its target: concurrent sends check theirs in one query
        self._device_checks: Batcher[tuple[str, str], bool] = Batcher(
            self._active_devices_of_apps, name="device-checks", unavailable=DatabaseUnavailable
        )

    def close(self) -> None:
        """Stop the batching thread (the database itself is closed by its owner)."""
        self._device_checks.close()

    # apps
    def insert_app(self, name: str, app_key_hash: str, server_key_hash: str) -> App:
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO apps (name, app_key_hash, server_key_hash, created_at)"
                " VALUES (%s, %s, %s, UTC_TIMESTAMP(6))",
                (name, app_key_hash, server_key_hash),
            )
            cur.execute("SELECT id, name, created_at FROM apps WHERE id = %s", (cur.lastrowid,))
            return _app(cur.fetchone())

    def app_by_app_key(self, app_key_hash: str) -> App | None:
        row = self.db.query_one(
            "SELECT id, name, created_at FROM apps WHERE app_key_hash = %s", (app_key_hash,)
        )
        return _app(row) if row else None

    def active_device_of_app(self, app_id: str, device_id: str) -> bool:
        if not (device_id.isascii() and device_id.isdigit()):
            return False
        return self._device_checks((app_id, device_id))

    def _active_devices_of_apps(self, pairs: list[tuple[str, str]]) -> list[bool]:
        """For each (app id, device id): is it an active device of that app."""
        ids = sorted({int(device_id) for _, device_id in pairs})
        marks = ", ".join(["%s"] * len(ids))
        rows = self.db.query(
            f"SELECT id, app_id FROM devices WHERE id IN ({marks}) AND status = 'active'", ids
        )
        found = {(str(r["app_id"]), str(r["id"])) for r in rows}
        return [(app_id, str(int(device_id))) in found for app_id, device_id in pairs]

    def app_by_server_key(self, server_key_hash: str) -> App | None:
        cached = self._apps_by_server_key.get(server_key_hash)
        if cached is not None and time.monotonic() - cached[1] < SERVER_KEY_CACHE_S:
            return cached[0]
        row = self.db.query_one(
            "SELECT id, name, created_at FROM apps WHERE server_key_hash = %s",
            (server_key_hash,),
        )
        if row is None:
            return None
        app = _app(row)
        if len(self._apps_by_server_key) > 10_000:
            self._apps_by_server_key.clear()
        self._apps_by_server_key[server_key_hash] = (app, time.monotonic())
        return app

    def app_ids(self) -> list[str]:
        return [str(r["id"]) for r in self.db.query("SELECT id FROM apps ORDER BY id")]

    # devices
    def _with_topics(self, rows: list[dict]) -> list[Device]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        topics: dict[int, list[str]] = {i: [] for i in ids}
        marks = ", ".join(["%s"] * len(ids))
        for t in self.db.query(
            f"SELECT device_id, topic FROM device_topics WHERE device_id IN ({marks})"
            " ORDER BY topic",
            ids,
        ):
            topics[t["device_id"]].append(t["topic"])
        return [
            Device(
                **{**r, "id": str(r["id"]), "app_id": str(r["app_id"])},
                topics=tuple(topics[r["id"]]),
            )
            for r in rows
        ]

    def device(self, device_id: str) -> Device | None:
        if not device_id.isdigit():
            return None
        rows = self.db.query(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE id = %s", (device_id,))
        found = self._with_topics(rows)
        return found[0] if found else None

    def device_by_installation(self, app_id: str, installation_id: str) -> Device | None:
        rows = self.db.query(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE app_id = %s AND installation_id = %s",
            (app_id, installation_id),
        )
        found = self._with_topics(rows)
        return found[0] if found else None

    def insert_pending_device(
        self, app_id: str, installation_id: str, secret_hash: str, values: dict, topics: list[str]
    ) -> str | None:
        """A new row, invisible until activated. None when the installation already has a
        row (a concurrent registration won)."""
        try:
            with self.db.transaction() as cur:
                cur.execute(
                    "INSERT INTO devices (app_id, installation_id, secret_hash, platform,"
                    " user_id, locale, app_version, status, created_at, updated_at,"
                    " last_active_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending',"
                    " UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                    (app_id, installation_id, secret_hash, *(values[f] for f in DEVICE_FIELDS)),
                )
                device_id = cur.lastrowid
                _insert_topics(cur, device_id, app_id, topics)
                return str(device_id)
        except pymysql.err.IntegrityError:
            return None

    def save_device(
        self,
        device_id: str,
        values: dict,
        topics: list[str] | None,
        *,
        status: str | None = None,
        secret_hash: str | None = None,
    ) -> None:
        """Write fields (and topics, when given) in one transaction."""
        sets = [f"{f} = %s" for f in DEVICE_FIELDS if f in values]
        args: list[object] = [values[f] for f in DEVICE_FIELDS if f in values]
        if status is not None:
            sets.append("status = %s")
            args.append(status)
        if secret_hash is not None:
            sets += ["secret_hash = %s", "last_active_at = UTC_TIMESTAMP(6)"]
            args.append(secret_hash)
        sets.append("updated_at = UTC_TIMESTAMP(6)")
        with self.db.transaction() as cur:
            cur.execute(f"UPDATE devices SET {', '.join(sets)} WHERE id = %s", (*args, device_id))
            if topics is not None:
                cur.execute("SELECT app_id FROM devices WHERE id = %s", (device_id,))
                app_id = cur.fetchone()["app_id"]
                cur.execute("DELETE FROM device_topics WHERE device_id = %s", (device_id,))
                _insert_topics(cur, device_id, app_id, topics)

    def set_status(self, device_id: str, status: str) -> None:
        self.db.execute(
            "UPDATE devices SET status = %s, updated_at = UTC_TIMESTAMP(6) WHERE id = %s",
            (status, device_id),
        )

    def touch(self, device_id: str) -> None:
        self.db.execute(
            "UPDATE devices SET last_active_at = UTC_TIMESTAMP(6) WHERE id = %s", (device_id,)
        )

    def devices_by_status(self, status: str, batch: int = 1000) -> Iterator[Device]:
        after = 0
        while True:
            rows = self.db.query(
                f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE status = %s AND id > %s"
                " ORDER BY id LIMIT %s",
                (status, after, batch),
            )
            if not rows:
                return
            yield from self._with_topics(rows)
            after = rows[-1]["id"]

    def known_device_ids(self, ids: list[str]) -> set[str]:
        """Which of these ids have a row that should own a queue (pending or active)."""
        numeric = [i for i in ids if i.isdigit()]
        if not numeric:
            return set()
        marks = ", ".join(["%s"] * len(numeric))
        rows = self.db.query(
            f"SELECT id FROM devices WHERE id IN ({marks}) AND status IN ('pending', 'active')",
            numeric,
        )
        return {str(r["id"]) for r in rows}

    # audiences: the active devices a send reaches
    def count_app_devices(self, app_id: str) -> int:
        row = self.db.query_one(
            "SELECT COUNT(*) AS n FROM devices WHERE app_id = %s AND status = 'active'",
            (app_id,),
        )
        return int(row["n"]) if row else 0

    def user_devices(self, app_id: str, user_id: str) -> list[str]:
        rows = self.db.query(
            "SELECT id FROM devices WHERE app_id = %s AND user_id = %s AND status = 'active'",
            (app_id, user_id),
        )
        return [str(r["id"]) for r in rows]

    def topic_devices(self, app_id: str, topic: str) -> list[str]:
        rows = self.db.query(
            "SELECT d.id FROM device_topics t JOIN devices d ON d.id = t.device_id"
            " WHERE t.app_id = %s AND t.topic = %s AND d.status = 'active'",
            (app_id, topic),
        )
        return [str(r["id"]) for r in rows]


def _insert_topics(cur, device_id: object, app_id: object, topics: list[str]) -> None:
    if topics:
        cur.executemany(
            "INSERT INTO device_topics (device_id, app_id, topic) VALUES (%s, %s, %s)",
            [(device_id, app_id, t) for t in topics],
        )
