"""Apps, devices and topic subscriptions in MySQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pymysql

from pushbox_core.batching import Batcher
from pushbox_core.errors import DatabaseUnavailable
from pushbox_core.mysql import Database

DEVICE_FIELDS = ("platform", "user_id", "locale", "app_version")
PROVIDERS = ("fcm", "apns")


@dataclass(frozen=True)
class App:
    id: str
    name: str
    created_at: datetime
    marketing_cap_per_day: int | None = None
    push_content: str = "inline"  # inline | private


@dataclass(frozen=True)
class PushToken:
    """A device's platform push token, as the device sent it."""

    provider: str  # fcm | apns
    token: str


@dataclass(frozen=True)
class Credential:
    """An app's credentials for one platform: `public` is what may be shown; `sealed`
    the private key, encrypted (pushbox_core.sealing)."""

    app_id: str
    provider: str
    public: dict
    sealed: str
    status: str  # active | rejected
    rejected_reason: str | None
    rejected_at: datetime | None


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
    push_provider: str | None = None
    push_token: str | None = None
    push_status: str | None = None  # active | invalid
    push_invalid_reason: str | None = None
    push_token_at: datetime | None = None
    topics: tuple[str, ...] = field(default=())

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class WakeTarget:
    """A device a platform push may go to: active, with an active token."""

    device_id: str
    provider: str
    token: str
    token_at: datetime


def _app(row: dict) -> App:
    return App(
        id=str(row["id"]),
        name=row["name"],
        created_at=row["created_at"],
        marketing_cap_per_day=row.get("marketing_cap_per_day"),
        push_content=row.get("push_content") or "inline",
    )


_APP_COLUMNS = "id, name, created_at, marketing_cap_per_day, push_content"
_DEVICE_COLUMNS = (
    "id, app_id, installation_id, secret_hash, platform, user_id, locale, app_version,"
    " status, created_at, updated_at, last_active_at, push_provider, push_token,"
    " push_status, push_invalid_reason, push_token_at"
)


SERVER_KEY_CACHE_S = 60.0  # apps are never deleted; a key lookup is on every send


class Store:
    def __init__(self, db: Database):
        self.db = db
        self._apps_by_server_key: dict[str, tuple[App, float]] = {}
        # every send checks its target: concurrent sends check theirs in one query
        self._device_checks: Batcher[tuple[str, str], bool | None] = Batcher(
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
            cur.execute(f"SELECT {_APP_COLUMNS} FROM apps WHERE id = %s", (cur.lastrowid,))
            return _app(cur.fetchone())

    def app_by_app_key(self, app_key_hash: str) -> App | None:
        row = self.db.query_one(
            f"SELECT {_APP_COLUMNS} FROM apps WHERE app_key_hash = %s", (app_key_hash,)
        )
        return _app(row) if row else None

    def app(self, app_id: str) -> App | None:
        row = self.db.query_one(f"SELECT {_APP_COLUMNS} FROM apps WHERE id = %s", (app_id,))
        return _app(row) if row else None

    def update_app_settings(self, app_id: str, values: dict) -> None:
        """Write the settings given (marketing_cap_per_day, push_content)."""
        sets = [f"{k} = %s" for k in ("marketing_cap_per_day", "push_content") if k in values]
        if sets:
            args = [values[k] for k in ("marketing_cap_per_day", "push_content") if k in values]
            self.db.execute(f"UPDATE apps SET {', '.join(sets)} WHERE id = %s", (*args, app_id))
            self._apps_by_server_key.clear()

    # an app's platform credentials
    def credentials(self, app_id: str) -> dict[str, Credential]:
        rows = self.db.query(
            "SELECT app_id, provider, public, sealed, status, rejected_reason, rejected_at"
            " FROM app_credentials WHERE app_id = %s",
            (app_id,),
        )
        return {
            r["provider"]: Credential(
                **{**r, "app_id": str(r["app_id"]), "public": json.loads(r["public"])}
            )
            for r in rows
        }

    def put_credential(self, app_id: str, provider: str, public: dict, sealed: str) -> None:
        """Set (or replace) an app's credentials for a platform: active again."""
        self.db.execute(
            "INSERT INTO app_credentials (app_id, provider, public, sealed, status, updated_at)"
            " VALUES (%s, %s, %s, %s, 'active', UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE"
            " public = VALUES(public), sealed = VALUES(sealed), status = 'active',"
            " rejected_reason = NULL, rejected_at = NULL, updated_at = UTC_TIMESTAMP(6)",
            (app_id, provider, json.dumps(public), sealed),
        )

    def all_sealed(self) -> list[tuple[str, str, str]]:
        """(app id, provider, sealed) of every stored credential: for a key rotation."""
        rows = self.db.query("SELECT app_id, provider, sealed FROM app_credentials")
        return [(str(r["app_id"]), r["provider"], r["sealed"]) for r in rows]

    def replace_sealed(self, app_id: str, provider: str, old: str, new: str) -> None:
        """The same secret sealed again (a key rotation); left alone if it changed."""
        self.db.execute(
            "UPDATE app_credentials SET sealed = %s"
            " WHERE app_id = %s AND provider = %s AND sealed = %s",
            (new, app_id, provider, old),
        )

    def retry_rejected_credential(
        self, app_id: str, provider: str, sealed: str, every_s: int
    ) -> bool:
        """Rejected credentials are tried again at most once every `every_s`: True for the
        one caller that takes this turn (it moves rejected_at to now)."""
        with self.db.connection() as conn, conn.cursor() as cur:
            n = cur.execute(
                "UPDATE app_credentials SET rejected_at = UTC_TIMESTAMP(6)"
                " WHERE app_id = %s AND provider = %s AND sealed = %s AND status = 'rejected'"
                " AND rejected_at < UTC_TIMESTAMP(6) - INTERVAL %s SECOND",
                (app_id, provider, sealed, every_s),
            )
        return bool(n)

    def credential_accepted(self, app_id: str, provider: str, sealed: str) -> None:
        """Rejected credentials that a platform took again are active again."""
        self.db.execute(
            "UPDATE app_credentials SET status = 'active', rejected_reason = NULL,"
            " rejected_at = NULL WHERE app_id = %s AND provider = %s AND sealed = %s",
            (app_id, provider, sealed),
        )

    def delete_credential(self, app_id: str, provider: str) -> None:
        self.db.execute(
            "DELETE FROM app_credentials WHERE app_id = %s AND provider = %s", (app_id, provider)
        )

    def mark_credential_rejected(self, app_id: str, provider: str, sealed: str, reason: str):
        """Google or Apple refused these credentials (and only these: a replacement
        uploaded meanwhile stays active)."""
        self.db.execute(
            "UPDATE app_credentials SET status = 'rejected', rejected_reason = %s,"
            " rejected_at = UTC_TIMESTAMP(6) WHERE app_id = %s AND provider = %s"
            " AND sealed = %s",
            (reason[:200], app_id, provider, sealed),
        )

    def active_device_of_app(self, app_id: str, device_id: str) -> bool | None:
        """None when it is not an active device of the app; else whether it has an
        active push token."""
        if not (device_id.isascii() and device_id.isdigit()):
            return None
        return self._device_checks((app_id, device_id))

    def _active_devices_of_apps(self, pairs: list[tuple[str, str]]) -> list[bool | None]:
        """For each (app id, device id): None when it is not an active device of that
        app, else whether it has an active push token."""
        ids = sorted({int(device_id) for _, device_id in pairs})
        marks = ", ".join(["%s"] * len(ids))
        rows = self.db.query(
            f"SELECT id, app_id, push_status = 'active' AS wakeable FROM devices"
            f" WHERE id IN ({marks}) AND status = 'active'",
            ids,
        )
        found = {(str(r["app_id"]), str(r["id"])): bool(r["wakeable"]) for r in rows}
        return [found.get((app_id, str(int(device_id)))) for app_id, device_id in pairs]

    def app_by_server_key(self, server_key_hash: str) -> App | None:
        cached = self._apps_by_server_key.get(server_key_hash)
        if cached is not None and time.monotonic() - cached[1] < SERVER_KEY_CACHE_S:
            return cached[0]
        row = self.db.query_one(
            f"SELECT {_APP_COLUMNS} FROM apps WHERE server_key_hash = %s",
            (server_key_hash,),
        )
        if row is None:
            return None
        app = _app(row)
        if len(self._apps_by_server_key) > 10_000:
            self._apps_by_server_key.clear()
        self._apps_by_server_key[server_key_hash] = (app, time.monotonic())
        return app

    def apps(self, limit: int = 500) -> list[App]:
        """The newest apps first."""
        rows = self.db.query(f"SELECT {_APP_COLUMNS} FROM apps ORDER BY id DESC LIMIT %s", (limit,))
        return [_app(r) for r in rows]

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

    def find_devices(self, app_id: str, text: str, limit: int = 50) -> list[Device]:
        """The app's devices whose id, installation id or user id is `text` (each
        condition on an index of its own), newest first."""
        conditions, args = ["installation_id = %s", "user_id = %s"], [text, text]
        if text.isdigit():
            conditions.append("id = %s")
            args.append(text)
        rows = self.db.query(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE app_id = %s"
            f" AND ({' OR '.join(conditions)}) ORDER BY id DESC LIMIT %s",
            (app_id, *args, limit),
        )
        return self._with_topics(rows)

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
        """Write fields (and topics, when given) in one transaction. `values` may hold
        `push_token`: a PushToken (a new token, active) or None (no token)."""
        sets = [f"{f} = %s" for f in DEVICE_FIELDS if f in values]
        args: list[object] = [values[f] for f in DEVICE_FIELDS if f in values]
        if "push_token" in values:
            push: PushToken | None = values["push_token"]
            # the same token again keeps its verdict: a token the platform called dead
            # stays unused until the device sends a new one (MySQL assigns left to
            # right, so these read the row's old token before it is replaced)
            same = "push_token <=> %s AND push_status = 'invalid'"
            sets += [
                f"push_status = CASE WHEN %s IS NULL THEN NULL WHEN {same} THEN 'invalid'"
                " ELSE 'active' END",
                f"push_invalid_reason = IF({same}, push_invalid_reason, NULL)",
                f"push_token_at = CASE WHEN %s IS NULL THEN NULL WHEN {same} THEN push_token_at"
                " ELSE UTC_TIMESTAMP(6) END",
                "push_provider = %s",
                "push_token = %s",
            ]
            token = push.token if push else None
            provider = push.provider if push else None
            args += [token, token, token, token, token, provider, token]
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

    def mark_token_invalid(self, device_id: str, token: str, reason: str) -> bool:
        """The platform said this token is dead: never used again until the device sends
        a new one (a token changed meanwhile is left alone). True if it was marked."""
        with self.db.connection() as conn, conn.cursor() as cur:
            n = cur.execute(
                "UPDATE devices SET push_status = 'invalid', push_invalid_reason = %s"
                " WHERE id = %s AND push_token = %s AND push_status = 'active'",
                (reason[:200], device_id, token),
            )
        return bool(n)

    # audiences: the active devices a send reaches, and how many have a push token
    def count_app_devices(self, app_id: str) -> tuple[int, int]:
        """(active devices of the app, those with an active push token)."""
        row = self.db.query_one(
            "SELECT COUNT(*) AS n, COALESCE(SUM(push_status = 'active'), 0) AS woken"
            " FROM devices WHERE app_id = %s AND status = 'active'",
            (app_id,),
        )
        return (int(row["n"]), int(row["woken"])) if row else (0, 0)

    def user_devices(self, app_id: str, user_id: str) -> list[tuple[str, bool]]:
        """(device id, has an active push token) for the user's active devices."""
        rows = self.db.query(
            "SELECT id, push_status = 'active' AS wakeable FROM devices"
            " WHERE app_id = %s AND user_id = %s AND status = 'active'",
            (app_id, user_id),
        )
        return [(str(r["id"]), bool(r["wakeable"])) for r in rows]

    def audiences(
        self, app_id: str, kind: str, values: list[str]
    ) -> dict[str, list[tuple[str, bool]]]:
        """For many targets of one kind (device, user, topic) in one query: each value's
        active devices, (device id, has an active push token); a value with none is
        left out."""
        if kind == "device":
            values = [v for v in values if v.isascii() and v.isdigit()]
        else:  # text MySQL can't hold (a lone surrogate) names no device: not a query error
            values = [v for v in values if _utf8(v)]
        if not values:
            return {}
        marks = ", ".join(["%s"] * len(values))
        if kind == "device":
            sql = (
                "SELECT id AS value, id, push_status = 'active' AS wakeable FROM devices"
                f" WHERE app_id = %s AND id IN ({marks}) AND status = 'active'"
            )
        elif kind == "user":
            sql = (
                "SELECT user_id AS value, id, push_status = 'active' AS wakeable FROM devices"
                f" WHERE app_id = %s AND user_id IN ({marks}) AND status = 'active'"
            )
        elif kind == "topic":
            sql = (
                "SELECT t.topic AS value, d.id, d.push_status = 'active' AS wakeable"
                " FROM device_topics t JOIN devices d ON d.id = t.device_id"
                f" WHERE t.app_id = %s AND t.topic IN ({marks}) AND d.status = 'active'"
            )
        else:
            raise ValueError(kind)
        found: dict[str, list[tuple[str, bool]]] = {}
        for r in self.db.query(sql, (app_id, *values)):
            found.setdefault(str(r["value"]), []).append((str(r["id"]), bool(r["wakeable"])))
        return found

    def topic_devices(self, app_id: str, topic: str) -> list[tuple[str, bool]]:
        rows = self.db.query(
            "SELECT d.id, d.push_status = 'active' AS wakeable"
            " FROM device_topics t JOIN devices d ON d.id = t.device_id"
            " WHERE t.app_id = %s AND t.topic = %s AND d.status = 'active'",
            (app_id, topic),
        )
        return [(str(r["id"]), bool(r["wakeable"])) for r in rows]

    def wake_targets(
        self,
        app_id: str,
        device_ids: list[str] | None = None,
        *,
        after: int = 0,
        limit: int = 1000,
        registered_by_ms: int | None = None,
    ) -> list[WakeTarget]:
        """Active devices of the app with an active push token: these ids, or (None) the
        app's that were registered by then (a broadcast reached only those), in id
        order from `after`, `limit` at a time."""
        where = "app_id = %s AND status = 'active' AND push_status = 'active'"
        args: list[object] = [app_id]
        if device_ids is None and registered_by_ms is not None:
            where += " AND created_at <= %s"  # UTC, as written
            args.append(datetime.fromtimestamp(registered_by_ms / 1000, UTC).replace(tzinfo=None))
        if device_ids is not None:
            ids = [i for i in device_ids if i.isdigit()]
            if not ids:
                return []
            where += f" AND id IN ({', '.join(['%s'] * len(ids))})"
            args += ids
        rows = self.db.query(
            "SELECT id, push_provider, push_token, push_token_at FROM devices"
            f" WHERE {where} AND id > %s ORDER BY id LIMIT %s",
            (*args, after, limit),
        )
        return [
            WakeTarget(str(r["id"]), r["push_provider"], r["push_token"], r["push_token_at"])
            for r in rows
        ]


def _insert_topics(cur, device_id: object, app_id: object, topics: list[str]) -> None:
    if topics:
        cur.executemany(
            "INSERT INTO device_topics (device_id, app_id, topic) VALUES (%s, %s, %s)",
            [(device_id, app_id, t) for t in topics],
        )


def _utf8(text: str) -> bool:
    try:
        text.encode()
        return True
    except UnicodeEncodeError:
        return False
