"""Campaigns in MySQL: the record of each campaign (status, progress, counters) and the
audience queries its fan-out runs over the devices table.

A campaign's row is the truth; Redis only holds its job. Its delivery counters
(acked, expired, dropped, woken) are those of its notifications row, which has the
campaign's id: the message id every device gets."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from dispatcher import messages
from dispatcher.campaigns.audience import Audience, where
from dispatcher.messages import Content, Message
from dispatcher.messages import Target as MessageTarget
from dispatcher.notifications import INSERT_ROW_ONCE, row_of
from pushbox_core.mysql import Database

UNFINISHED = ("scheduled", "queued", "running")
STATUSES = ("scheduled", "queued", "running", "done", "cancelled", "failed")

_COLUMNS = (
    "c.id, c.seq, c.app_id, c.status, c.priority, c.audience, c.content, c.send_at,"
    " c.created_at, c.started_at, c.finished_at, c.targets, c.published, c.capped,"
    " c.cursor_id, c.error, COALESCE(n.acked, 0) AS acked, COALESCE(n.expired, 0) AS expired,"
    " COALESCE(n.dropped, 0) AS dropped, COALESCE(n.woken, 0) AS woken"
)
_FROM = "FROM campaigns c LEFT JOIN notifications n ON n.id = c.id"


def utc_now() -> datetime:
    """Naive UTC, to the millisecond (what a message's created_at keeps)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Campaign:
    id: str
    seq: int
    app_id: str
    stored_status: str
    priority: str
    audience: Audience
    content: Content
    send_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    targets: int | None
    published: int
    capped: int
    cursor_id: int
    error: str | None
    acked: int = 0
    expired: int = 0
    dropped: int = 0
    woken: int = 0

    @property
    def status(self) -> str:
        """As the API shows it: a scheduled campaign whose time has come is queued (its
        job waits for a worker)."""
        if self.stored_status == "scheduled" and self.send_at <= utc_now():
            return "queued"
        return self.stored_status

    def counters(self) -> dict[str, int | None]:
        """What `campaign.finished` tells other services of its progress."""
        return {"targets": self.targets, "published": self.published, "capped": self.capped}

    def message(self) -> Message:
        """The message every device gets: the campaign's id, created when it started
        (the same for every chunk, however often one runs)."""
        return messages.build(
            "broadcast", self.content, message_id=self.id, now=self.started_at or utc_now()
        )


def _campaign(row: dict) -> Campaign:
    return Campaign(
        id=row["id"],
        seq=int(row["seq"]),
        app_id=str(row["app_id"]),
        stored_status=row["status"],
        priority=row["priority"],
        audience=Audience.from_json(json.loads(row["audience"])),
        content=Content(**json.loads(row["content"])),
        send_at=row["send_at"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        targets=row["targets"],
        published=int(row["published"]),
        capped=int(row["capped"]),
        cursor_id=int(row["cursor_id"]),
        error=row["error"],
        acked=int(row["acked"]),
        expired=int(row["expired"]),
        dropped=int(row["dropped"]),
        woken=int(row["woken"]),
    )


@dataclass(frozen=True)
class Target:
    """A device a chunk publishes to."""

    device_id: int
    wakeable: bool  # has an active platform push token


class CampaignStore:
    def __init__(self, db: Database):
        self.db = db

    # ---- the API's side
    def insert(
        self,
        campaign_id: str,
        app_id: str,
        status: str,
        priority: str,
        audience: Audience,
        content: Content,
        send_at: datetime,
    ) -> None:
        self.db.execute(
            "INSERT INTO campaigns (id, app_id, status, priority, audience, content, send_at,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                campaign_id,
                app_id,
                status,
                priority,
                json.dumps(audience.to_json()),
                json.dumps(asdict(content)),
                send_at,
                utc_now(),
            ),
        )

    def forget(self, campaign_id: str) -> None:
        """Undo insert() when its job could not be queued: nothing was sent."""
        self.db.execute("DELETE FROM campaigns WHERE id = %s", (campaign_id,))

    def get(self, app_id: str | None, campaign_id: str) -> Campaign | None:
        """The campaign (of that app, unless app_id is None)."""
        sql, args = f"SELECT {_COLUMNS} {_FROM} WHERE c.id = %s", [campaign_id]
        if app_id is not None:
            sql += " AND c.app_id = %s"
            args.append(app_id)
        row = self.db.query_one(sql, args)
        return _campaign(row) if row else None

    def page(
        self, app_id: str, status: str | None, limit: int, before_seq: int | None
    ) -> list[Campaign]:
        """Newest first: up to `limit` campaigns older than `before_seq` (a cursor)."""
        conds: list[str] = ["c.app_id = %s"]
        args: list[object] = [app_id]
        if before_seq is not None:
            conds.append("c.seq < %s")
            args.append(before_seq)
        if status == "queued":  # as shown: with the scheduled whose time has come
            conds.append(
                "(c.status = 'queued' OR (c.status = 'scheduled'"
                " AND c.send_at <= UTC_TIMESTAMP(6)))"
            )
        elif status == "scheduled":
            conds.append("c.status = 'scheduled' AND c.send_at > UTC_TIMESTAMP(6)")
        elif status is not None:
            conds.append("c.status = %s")
            args.append(status)
        rows = self.db.query(
            f"SELECT {_COLUMNS} {_FROM} WHERE {' AND '.join(conds)} ORDER BY c.seq DESC LIMIT %s",
            (*args, limit),
        )
        return [_campaign(r) for r in rows]

    def cancel(self, app_id: str, campaign_id: str) -> bool:
        """Cancelled, if it had not finished; True when this call cancelled it."""
        with self.db.connection() as conn, conn.cursor() as cur:
            n = cur.execute(
                "UPDATE campaigns SET status = 'cancelled', finished_at = UTC_TIMESTAMP(6)"
                " WHERE id = %s AND app_id = %s AND status IN ('scheduled', 'queued', 'running')",
                (campaign_id, app_id),
            )
        return bool(n)

    # ---- the worker's side
    def start(self, campaign_id: str) -> Campaign | None:
        """Mark it running (started now, its targets counted, its notifications row
        written), once: a campaign running already (its job run again) is returned as
        it is. None when it is finished (done, cancelled, failed) or gone."""
        with self.db.transaction() as cur:
            cur.execute(f"SELECT {_COLUMNS} {_FROM} WHERE c.id = %s FOR UPDATE", (campaign_id,))
            row = cur.fetchone()
            if row is None or row["status"] not in UNFINISHED:
                return None
            campaign = _campaign(row)
            if campaign.stored_status == "running":
                return campaign
            started = utc_now()
            targets = self._count(cur, campaign.app_id, campaign.audience)
            cur.execute(
                "UPDATE campaigns SET status = 'running', started_at = %s, targets = %s"
                " WHERE id = %s",
                (started, targets, campaign_id),
            )
            campaign = _campaign(
                {**row, "status": "running", "started_at": started, "targets": targets}
            )
            message = campaign.message()
            # its counters' row: syncs, dead letters and wakes count there by this id
            cur.execute(
                INSERT_ROW_ONCE,
                row_of(campaign.app_id, message, MessageTarget("campaign"), targets, "sent"),
            )
            return campaign

    @staticmethod
    def _count(cur, app_id: str, audience: Audience) -> int:
        conds, args = where(audience)
        cur.execute(
            "SELECT COUNT(*) AS n FROM devices d WHERE d.app_id = %s AND d.status = 'active'"
            + (f" AND {conds}" if conds else ""),
            (app_id, *args),
        )
        return int(cur.fetchone()["n"])

    def chunk(self, app_id: str, audience: Audience, after_id: int, limit: int) -> list[Target]:
        """The next `limit` devices of the audience with ids above `after_id`, in id
        order: a range scan of the (app_id, status, id) index."""
        conds, args = where(audience)
        rows = self.db.query(
            "SELECT d.id, d.push_status = 'active' AS wakeable FROM devices d"
            " WHERE d.app_id = %s AND d.status = 'active' AND d.id > %s"
            + (f" AND {conds}" if conds else "")
            + " ORDER BY d.id LIMIT %s",
            (app_id, after_id, *args, limit),
        )
        return [Target(int(r["id"]), bool(r["wakeable"])) for r in rows]

    def status_of(self, campaign_id: str) -> str | None:
        row = self.db.query_one("SELECT status FROM campaigns WHERE id = %s", (campaign_id,))
        return row["status"] if row else None

    def count_chunk(
        self, campaign_id: str, after_id: int, last_id: int, published: int, capped: int
    ) -> bool:
        """Count a chunk published (devices after_id < id <= last_id) and move the
        cursor past it, in one transaction, once: a chunk counted already (run twice)
        adds nothing. True when it was counted now."""
        with self.db.transaction() as cur:
            n = cur.execute(
                "INSERT IGNORE INTO campaign_chunks (campaign_id, after_id, last_id, published,"
                " capped, done_at) VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6))",
                (campaign_id, after_id, last_id, published, capped),
            )
            if n:
                cur.execute(
                    "UPDATE campaigns SET published = published + %s, capped = capped + %s,"
                    " cursor_id = GREATEST(cursor_id, %s) WHERE id = %s",
                    (published, capped, last_id, campaign_id),
                )
            return bool(n)

    def finish(self, campaign_id: str) -> bool:
        """Done, unless it was cancelled meanwhile; True when this call finished it."""
        with self.db.connection() as conn, conn.cursor() as cur:
            n = cur.execute(
                "UPDATE campaigns SET status = 'done', finished_at = UTC_TIMESTAMP(6)"
                " WHERE id = %s AND status = 'running'",
                (campaign_id,),
            )
        return bool(n)

    def fail(self, campaign_id: str, error: str) -> None:
        self.db.execute(
            "UPDATE campaigns SET status = 'failed', finished_at = UTC_TIMESTAMP(6), error = %s"
            " WHERE id = %s AND status IN ('scheduled', 'queued', 'running')",
            (error[:500], campaign_id),
        )

    def counts_by_status(self) -> dict[str, int]:
        """How many campaigns are in each stored status (for pushbox_campaigns)."""
        rows = self.db.query("SELECT status, COUNT(*) AS n FROM campaigns GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    def unfinished(self) -> list[Campaign]:
        """Every campaign MySQL says is scheduled, queued or running (the reconciler's)."""
        rows = self.db.query(
            f"SELECT {_COLUMNS} {_FROM} WHERE c.status IN ('scheduled', 'queued', 'running')"
            " ORDER BY c.seq"
        )
        return [_campaign(r) for r in rows]
