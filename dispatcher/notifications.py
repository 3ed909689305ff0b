"""Notifications in MySQL: what was sent, to whom, and its counters."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import pymysql

from dispatcher.messages import Message, Target
from pushbox_core.batching import Batcher
from pushbox_core.errors import DatabaseUnavailable
from pushbox_core.mysql import Database

log = logging.getLogger(__name__)

COUNTERS = ("acked", "expired", "dropped", "collapsed", "woken", "wake_failed")
INSERT_ROW = (
    "INSERT INTO notifications (id, app_id, kind, target_kind, target, priority,"
    " collapse_key, ttl_s, created_at, expires_at, targets, state)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
INSERT_ROW_ONCE = INSERT_ROW.replace("INSERT", "INSERT IGNORE", 1)  # an id there stays
TALLY_FLUSH_S = 0.25  # how far the sync counters may lag


def row_of(app_id: str, message: Message, target: Target, targets: int, state: str) -> tuple:
    """A send's row, in INSERT_ROW's order."""
    return (
        message.id,
        app_id,
        message.kind,
        target.kind,
        target.value,
        message.priority,
        message.collapse_key,
        message.ttl_s,
        message.created_at,
        message.expires_at,
        targets,
        state,
    )


@dataclass(frozen=True)
class Notification:
    id: str
    app_id: str
    kind: str
    target_kind: str
    target: str | None
    priority: str
    created_at: datetime
    expires_at: datetime
    targets: int
    acked: int
    expired: int
    dropped: int
    collapsed: int
    woken: int  # platform pushes Google or Apple accepted
    wake_failed: int  # platform pushes refused for good


_COLUMNS = (
    "id, app_id, kind, target_kind, target, priority, created_at, expires_at,"
    " targets, acked, expired, dropped, collapsed, woken, wake_failed"
)


def _notification(row: dict) -> Notification:
    return Notification(**{**row, "app_id": str(row["app_id"])})


class Notifications:
    def __init__(self, db: Database):
        self.db = db
        # a row per send: concurrent sends write theirs in one INSERT (one commit)
        self._inserts: Batcher[tuple, str | None] = Batcher(
            self._insert_rows, name="notification-rows", unavailable=DatabaseUnavailable
        )

    def close(self) -> None:
        """Stop the batching thread (the database itself is closed by its owner)."""
        self._inserts.close()

    def record(
        self, app_id: str, message: Message, target: Target, targets: int, *, state: str = "sent"
    ) -> str | None:
        """Write the row before publishing. Returns None when it is new, else the state
        of the row this id already has."""
        return self._inserts(row_of(app_id, message, target, targets, state))

    def record_many(self, sends: list[tuple[str, Message, Target, int]]) -> None:
        """Rows for many new sends (fresh ids), (app id, message, target, targets), in
        one multi-row INSERT, written whole or not at all; state `sent` (see
        mark_sending_many, forget_many)."""
        if not sends:
            return
        rows = [row_of(app_id, m, t, targets, "sent") for app_id, m, t, targets in sends]
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.executemany(INSERT_ROW, rows)

    def mark_sending_many(self, notification_ids: list[str]) -> None:
        """Published and not confirmed: they may be delivered yet."""
        if notification_ids:
            marks = ", ".join(["%s"] * len(notification_ids))
            self.db.execute(
                f"UPDATE notifications SET state = 'sending' WHERE id IN ({marks})",
                notification_ids,
            )

    def forget_many(self, notification_ids: list[str]) -> None:
        """Undo record_many() for sends that reached no queue."""
        if notification_ids:
            marks = ", ".join(["%s"] * len(notification_ids))
            self.db.execute(f"DELETE FROM notifications WHERE id IN ({marks})", notification_ids)

    def _insert_rows(self, rows: list[tuple]) -> list[str | None | Exception]:
        """One multi-row INSERT. If MySQL refuses it (an id is taken: a redelivered
        order event), row by row instead, so that one row's trouble is its own caller's
        alone: None for a new row, the state of the old one for a taken id, or the
        error. MySQL being down fails them all (DatabaseUnavailable). A batch (at most
        BATCH_MAX rows of well under 1 KB) stays below pymysql's 1 MB statement limit,
        so executemany sends one statement: it is written whole or not at all."""
        try:
            with self.db.connection() as conn, conn.cursor() as cur:
                cur.executemany(INSERT_ROW, rows)
            return [None] * len(rows)
        except pymysql.err.MySQLError:
            pass
        results: list[str | None | Exception] = []
        for row in rows:
            try:
                self.db.execute(INSERT_ROW, row)
                results.append(None)
            except pymysql.err.IntegrityError:
                earlier = self.db.query_one(
                    "SELECT state FROM notifications WHERE id = %s", row[:1]
                )
                results.append(earlier["state"] if earlier else None)
            except pymysql.err.MySQLError as e:
                results.append(e)
        return results

    def mark_sent(self, notification_id: str) -> None:
        self.db.execute("UPDATE notifications SET state = 'sent' WHERE id = %s", (notification_id,))

    def mark_sending(self, notification_id: str) -> None:
        """The publish was not confirmed: published again if its id comes back."""
        self.db.execute(
            "UPDATE notifications SET state = 'sending' WHERE id = %s", (notification_id,)
        )

    def forget(self, notification_id: str) -> None:
        """Undo record() when the publish failed: nothing was sent."""
        self.db.execute("DELETE FROM notifications WHERE id = %s", (notification_id,))

    def get(self, app_id: str, notification_id: str) -> Notification | None:
        row = self.db.query_one(
            f"SELECT {_COLUMNS} FROM notifications WHERE id = %s AND app_id = %s",
            (notification_id, app_id),
        )
        return None if row is None else _notification(row)

    def recent(self, app_id: str, limit: int = 20) -> list[Notification]:
        """The app's latest notifications and broadcasts, newest first."""
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM notifications WHERE app_id = %s"
            " ORDER BY created_at DESC LIMIT %s",
            (app_id, limit),
        )
        return [_notification(r) for r in rows]

    def count(self, counts: dict[tuple[str, str], int]) -> None:
        """Add to counters, {(notification_id, counter): n}: all in one transaction, so
        that a failure counts nothing and may be retried. One UPDATE a counter (rows
        locked in one order); ids that add one (the common case: a device acks each
        message once) appear only in its IN list."""
        by_counter: dict[str, dict[str, int]] = {}
        for (notification_id, counter), n in counts.items():
            if counter not in COUNTERS:
                raise ValueError(counter)
            by_counter.setdefault(counter, {})[notification_id] = n
        with self.db.transaction() as cur:
            for counter, amounts in sorted(by_counter.items()):
                ids = sorted(amounts)
                more = [i for i in ids if amounts[i] != 1]
                add = "1"
                if more:
                    add = "CASE id" + " WHEN %s THEN %s" * len(more) + " ELSE 1 END"
                args: list[object] = [v for i in more for v in (i, amounts[i])]
                marks = ", ".join(["%s"] * len(ids))
                cur.execute(
                    f"UPDATE notifications SET {counter} = {counter} + {add} WHERE id IN ({marks})",
                    args + ids,
                )
