"""Campaigns (DESIGN "Campaigns and bulk sends"), end to end against the real MySQL,
RabbitMQ and Redis, with the real campaign worker (`python -m dispatcher.campaigns`,
an RQ worker forking a work horse per job) started by this module as a process.

The module has a namespace and a database of its own, so that no other campaign
worker (the `stack` fixture's) takes its jobs. Fan-out chunks are 10 devices here.

Never a timed assertion: where a test needs a campaign to stand still in the middle
of its fan-out, it holds a lock on the chunk ledger (`SELECT ... FOR UPDATE` over
`campaign_chunks`): the job publishes its first chunk, then waits to count it, until
the test lets go."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymysql
import pytest
import redis

from dispatcher.bootstrap import bootstrap
from pushbox_core.names import Names
from pushbox_core.settings import Settings
from scripts.launcher import processes
from sdk_stub.events import EventListener
from tests.conftest import api_of, namespace_of_its_own, settings_env
from tests.support import bearer, device_session, eventually, new_app, take_all

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 10
FINISHED = ("done", "cancelled", "failed")
ORDER = ["scheduled", "queued", "running", "done"]


# ---- the module's own namespace, API and worker
@pytest.fixture(scope="module")
def own(settings: Settings) -> Iterator[Settings]:
    with namespace_of_its_own(settings, "c", campaign_chunk_size=CHUNK) as s:
        yield s


@pytest.fixture(scope="module")
def api(own):
    with api_of(own) as flask_app:
        yield flask_app


@pytest.fixture
def cclient(api):
    return api.test_client()


@pytest.fixture(scope="module")
def cnames(own) -> Names:
    return Names(own.namespace, own.redis_prefix)


class Worker:
    """The campaign worker as a process of this test's own, stopped by its pid."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - the child writes it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher.campaigns"],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        out.close()
        self.starts += 1
        ready = eventually(lambda: self.log.read_text().count(" consuming ") >= self.starts, 60)
        assert ready, self.log.read_text()[-3000:]

    def tree(self) -> list[int]:
        """The worker and what it forked (RQ's scheduler, a work horse in its own
        process group)."""
        assert self.proc is not None
        found, todo = [], [self.proc.pid]
        procs = processes()
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += [p.pid for p in procs if p.ppid == pid and p.state != "Z"]
        return found

    def kill9(self) -> None:
        for pid in self.tree():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        tree = self.tree()
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(20)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


@pytest.fixture(scope="module")
def worker(own) -> Iterator[Worker]:
    with tempfile.TemporaryDirectory(prefix="pushbox-campaigns-") as tmp:
        w = Worker(settings_env(own), Path(tmp) / "campaigns.log")
        w.start()
        try:
            yield w
        finally:
            w.stop()


@pytest.fixture
def rabbit(rabbit_channel):
    return rabbit_channel


def mysql(own: Settings):
    return pymysql.connect(
        host=own.mysql_host,
        port=own.mysql_port,
        user=own.mysql_user,
        password=own.mysql_password,
        database=own.mysql_database,
        autocommit=False,
    )


@contextlib.contextmanager
def chunks_held(own: Settings) -> Iterator[None]:
    """While inside: no campaign can count a chunk (a lock on the whole chunk ledger,
    gaps included), so a running campaign stops after publishing its chunk in hand."""
    conn = mysql(own)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM campaign_chunks FOR UPDATE")
        yield
    finally:
        conn.rollback()
        conn.close()


# ---- acting as the app's backend
class Shop:
    def __init__(self, client, settings, name="campaigns"):
        self.client = client
        self.app = new_app(client, settings, name)
        self.auth = bearer(self.app["server_key"])

    def device(self, **fields) -> str:
        return device_session(self.client, self.app, **fields)[0]

    def create(self, headers: dict | None = None, **body) -> dict:
        body.setdefault("title", "Sale")
        r = self.client.post("/v1/campaigns", json=body, headers={**self.auth, **(headers or {})})
        assert r.status_code == 202, r.get_json()
        return r.get_json()

    def get(self, campaign_id: str) -> dict:
        r = self.client.get(f"/v1/campaigns/{campaign_id}", headers=self.auth)
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    def until(self, campaign_id: str, check, seconds: float = 60) -> dict:
        def now() -> dict | None:
            c = self.get(campaign_id)
            return c if check(c) else None

        found = eventually(now, seconds)
        assert found, self.get(campaign_id)
        return found

    def finished(self, campaign_id: str, seen: list[str] | None = None) -> dict:
        def check(c: dict) -> bool:
            if seen is not None and (not seen or seen[-1] != c["status"]):
                seen.append(c["status"])
            return c["status"] in FINISHED

        return self.until(campaign_id, check)


def pending(rabbit, names: Names, device_id: str) -> int:
    """Messages in the device's normal lane, left there."""
    return rabbit.queue_declare(
        names.device_queue(device_id, "normal"), passive=True
    ).method.message_count


def ids_in(rabbit, names: Names, device_id: str) -> list[str]:
    return [m["id"] for m in take_all(rabbit, names, device_id)]


# ---- audience
def test_each_audience_filter_alone_and_combined(cclient, own, cnames, rabbit, worker):
    shop = Shop(cclient, own, "audience")
    a = shop.device(
        platform="android", locale="de-AT", app_version="4.10.0", topics=["deals"], user_id="u1"
    )
    b = shop.device(platform="ios", locale="de", app_version="4.9", topics=["news"], user_id="u2")
    c = shop.device(platform="web", locale="en_US", app_version="3.0", user_id="u3")
    d = shop.device(platform="android", locale="fr", app_version="5", topics=["deals", "news"])
    conn = mysql(own)
    with conn.cursor() as cur:  # c was last active two days ago
        cur.execute(
            "UPDATE devices SET last_active_at = UTC_TIMESTAMP(6) - INTERVAL 2 DAY WHERE id = %s",
            (c,),
        )
    conn.commit()
    conn.close()
    everyone = {a, b, c, d}
    cases = [
        ({}, everyone),
        ({"platforms": ["android"]}, {a, d}),
        ({"platforms": ["ios", "web"]}, {b, c}),
        ({"locales": ["de"]}, {a, b}),
        ({"locales": ["de-AT"]}, {a}),
        ({"locales": ["en-us", "fr"]}, {c, d}),
        ({"app_versions": ["4.9", "3.0"]}, {b, c}),
        ({"min_app_version": "4.10"}, {a, d}),
        ({"min_app_version": "4.9.0"}, {a, b, d}),
        ({"topics": ["deals"]}, {a, d}),
        ({"topics": ["news", "deals"]}, {a, b, d}),
        ({"user_ids": ["u1", "u3", "nobody"]}, {a, c}),
        ({"seen_within_s": 3600}, {a, b, d}),
        ({"platforms": ["android", "ios"], "locales": ["de"], "min_app_version": "4.10"}, {a}),
        ({"topics": ["news"], "seen_within_s": 3600, "platforms": ["android"]}, {d}),
        ({"user_ids": ["u1"], "platforms": ["ios"]}, set()),
    ]
    for audience, expected in cases:
        created = shop.create(audience=audience, body=str(audience))
        assert created["status"] == "queued"
        done = shop.finished(created["id"])
        assert done["status"] == "done", (audience, done)
        assert (done["targets"], done["published"], done["capped"]) == (
            len(expected),
            len(expected),
            0,
        ), audience
        for device in everyone:
            got = take_all(rabbit, cnames, device)
            want = [created["id"]] if device in expected else []
            assert [m["id"] for m in got] == want, (audience, device)
            if got:
                assert got[0]["kind"] == "broadcast" and got[0]["body"] == str(audience)


# ---- bad input
@pytest.mark.parametrize(
    "body, field",
    [
        ({"title": "t", "audience": {"countries": ["de"]}}, "audience"),
        ({"title": "t", "audience": {"platforms": ["symbian"]}}, "audience"),
        ({"title": "t", "audience": {"min_app_version": "four"}}, "audience"),
        ({"title": "t", "send_at": "2020-01-01T00:00:00Z"}, "send_at"),
        ({"title": "t", "send_at": "in a bit"}, "send_at"),
        ({"audience": {"platforms": ["ios"]}}, "title"),
        ({"title": "", "data": {}}, "title"),
    ],
)
def test_bad_input_is_422_naming_the_field(cclient, own, body, field):
    shop = Shop(cclient, own, "bad-input")
    r = cclient.post("/v1/campaigns", json=body, headers=shop.auth)
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["errors"]["json"]


def test_send_at_more_than_30_days_ahead_or_a_minute_late_is_refused(cclient, own):
    shop = Shop(cclient, own, "send-at")
    now = datetime.now(UTC)
    for at in (now + timedelta(days=30, minutes=5), now - timedelta(minutes=5)):
        r = cclient.post(
            "/v1/campaigns", json={"title": "t", "send_at": at.isoformat()}, headers=shop.auth
        )
        assert r.status_code == 422 and "send_at" in r.get_json()["errors"]["json"]
    r = cclient.post(
        "/v1/campaigns",
        json={"title": "t", "send_at": (now - timedelta(seconds=20)).isoformat()},
        headers=shop.auth,
    )
    assert r.status_code == 202 and r.get_json()["status"] == "queued"
    assert shop.finished(r.get_json()["id"])["status"] == "done"


# ---- scheduling
def test_a_campaign_3s_ahead_is_scheduled_then_runs(cclient, own, cnames, rabbit, worker):
    shop = Shop(cclient, own, "scheduled")
    device = shop.device()
    send_at = datetime.now(UTC) + timedelta(seconds=3)
    created = shop.create(send_at=send_at.isoformat())
    assert created["status"] == "scheduled"
    seen: list[str] = []
    done = shop.finished(created["id"], seen)
    assert done["status"] == "done"
    assert seen[0] == "scheduled" and seen[-1] == "done"
    assert [ORDER.index(s) for s in seen] == sorted(ORDER.index(s) for s in seen)
    started = datetime.fromisoformat(done["started_at"].replace("Z", "+00:00"))
    created_at = datetime.fromisoformat(done["created_at"].replace("Z", "+00:00"))
    assert created_at < send_at.replace(microsecond=send_at.microsecond // 1000 * 1000)
    assert started >= datetime.fromisoformat(done["send_at"].replace("Z", "+00:00"))
    assert ids_in(rabbit, cnames, device) == [created["id"]]


# ---- cancel
def test_cancelled_before_it_starts_sends_nothing(cclient, own, cnames, rabbit, worker):
    shop = Shop(cclient, own, "cancel-before")
    device = shop.device()
    send_at = datetime.now(UTC) + timedelta(seconds=2)
    first = shop.create(send_at=send_at.isoformat())
    heard = EventListener(own.rabbitmq_url, own.namespace, ["campaign.finished"])
    try:
        r = cclient.delete(f"/v1/campaigns/{first['id']}", headers=shop.auth)
        assert r.status_code == 200 and r.get_json()["status"] == "cancelled"
        # other services hear of it, with its counters, as of a campaign that ran
        events: list[dict] = []
        assert eventually(lambda: events.extend(heard.take()) or events)
    finally:
        heard.close()
    assert [(e["campaign_id"], e["status"]) for e in events] == [(first["id"], "cancelled")]
    assert (events[0]["targets"], events[0]["published"], events[0]["capped"]) == (None, 0, 0)
    # a later campaign, due after the first: once it is done, the first one's time
    # had come and gone (one worker, jobs in the order they fall due)
    marker = shop.create(send_at=(send_at + timedelta(seconds=1)).isoformat())
    assert shop.finished(marker["id"])["status"] == "done"
    after = shop.get(first["id"])
    assert (after["status"], after["published"], after["targets"]) == ("cancelled", 0, None)
    assert ids_in(rabbit, cnames, device) == [marker["id"]]
    # cancelling a finished campaign changes nothing
    r = cclient.delete(f"/v1/campaigns/{marker['id']}", headers=shop.auth)
    assert r.status_code == 200 and r.get_json()["status"] == "done"
    r = cclient.delete("/v1/campaigns/nope", headers=shop.auth)
    assert r.status_code == 404 and r.get_json()["error"] == "campaign_not_found"


def test_cancelled_while_running_stops_after_the_chunk_in_hand(
    cclient, own, cnames, rabbit, worker
):
    shop = Shop(cclient, own, "cancel-during")
    devices = [shop.device() for _ in range(3 * CHUNK)]  # ids grow: the first chunk first
    with chunks_held(own):
        created = shop.create()
        # the first chunk is out (its first device has it); the job waits to count it
        assert eventually(lambda: pending(rabbit, cnames, devices[0]), 30)
        assert shop.get(created["id"])["status"] == "running"
        r = cclient.delete(f"/v1/campaigns/{created['id']}", headers=shop.auth)
        assert r.status_code == 200 and r.get_json()["status"] == "cancelled"
    marker = shop.create(audience={"user_ids": ["nobody"]})  # taken after the first job ends
    assert shop.finished(marker["id"])["status"] == "done"
    after = shop.get(created["id"])
    assert (after["status"], after["targets"], after["published"]) == ("cancelled", 30, CHUNK)
    for i, device in enumerate(devices):
        assert ids_in(rabbit, cnames, device) == ([created["id"]] if i < CHUNK else []), i


# ---- transactional work first
def test_transactional_work_overtakes_a_running_campaign(cclient, own, cnames, rabbit, worker):
    shop = Shop(cclient, own, "overtaking")
    devices = [shop.device(user_id=f"u{i}") for i in range(2 * CHUNK)]
    last = devices[-1]
    with chunks_held(own):
        big = shop.create(body="promo")
        assert shop.until(big["id"], lambda c: c["status"] == "running")
        # while it runs (it can't finish while the ledger is held): an order update
        # to a device it has not reached goes out at once
        r = cclient.post(
            "/v1/notifications",
            json={"to": {"user_id": f"u{2 * CHUNK - 1}"}, "title": "Order shipped"},
            headers=shop.auth,
        )
        assert r.status_code == 202
        order_id = r.get_json()["id"]
        assert shop.get(big["id"])["status"] == "running"
        # and while the worker is busy, a normal then a high campaign are queued
        normal = shop.create(audience={"user_ids": ["u0"]}, body="normal")
        high = shop.create(audience={"user_ids": ["u0"]}, body="high", priority="high")
    assert shop.finished(big["id"])["status"] == "done"
    n, h = shop.finished(normal["id"]), shop.finished(high["id"])
    assert h["finished_at"] <= n["started_at"]  # the high one was taken first
    got = take_all(rabbit, cnames, last)
    assert [m["id"] for m in got] == [order_id, big["id"]]  # high lane first


# ---- the marketing cap
def test_the_daily_cap_skips_and_counts_what_is_over(cclient, own, cnames, rabbit, worker):
    shop = Shop(cclient, own, "cap")
    devices = [shop.device() for _ in range(3)]
    r = cclient.patch("/v1/app", json={"settings": {"marketing_cap_per_day": 2}}, headers=shop.auth)
    assert r.status_code == 200
    early = shop.create(audience={"user_ids": ["nobody"]})  # nothing: uses no one's cap
    assert shop.finished(early["id"])["published"] == 0
    one = shop.finished(shop.create(body="one")["id"])
    assert (one["published"], one["capped"]) == (3, 0)
    r = cclient.post("/v1/broadcasts", json={"title": "bc"}, headers=shop.auth)
    broadcast = r.get_json()["id"]  # a fanout can't skip anyone: it counts for all
    two = shop.finished(shop.create(body="two")["id"])
    assert (two["targets"], two["published"], two["capped"]) == (3, 0, 3)
    urgent = shop.finished(shop.create(body="urgent", priority="high")["id"])
    assert (urgent["published"], urgent["capped"]) == (3, 0)  # the cap is for normal ones
    for device in devices:
        assert sorted(ids_in(rabbit, cnames, device)) == sorted(
            [one["id"], broadcast, urgent["id"]]
        )
    cclient.patch("/v1/app", json={"settings": {"marketing_cap_per_day": 3}}, headers=shop.auth)
    three = shop.finished(shop.create(body="three")["id"])
    assert (three["published"], three["capped"]) == (3, 0)


# ---- idempotency and listing
def test_the_same_idempotency_key_creates_one_campaign(cclient, own, cnames, rabbit, worker):
    shop = Shop(cclient, own, "idempotent")
    device = shop.device()
    key = {"Idempotency-Key": "promo-2026-12-01"}
    first = shop.create(headers=key)
    again = shop.create(headers=key)
    assert again == first
    assert shop.finished(first["id"])["published"] == 1
    listed = cclient.get("/v1/campaigns", headers=shop.auth).get_json()["campaigns"]
    assert [c["id"] for c in listed] == [first["id"]]
    assert ids_in(rabbit, cnames, device) == [first["id"]]


def test_listing_is_newest_first_with_a_cursor(cclient, own):
    shop = Shop(cclient, own, "listing")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    made = [shop.create(send_at=later, body=str(i))["id"] for i in range(3)]
    cclient.delete(f"/v1/campaigns/{made[0]}", headers=shop.auth)
    page = cclient.get("/v1/campaigns?limit=2", headers=shop.auth).get_json()
    assert [c["id"] for c in page["campaigns"]] == [made[2], made[1]]
    rest = cclient.get(
        f"/v1/campaigns?limit=2&cursor={page['next_cursor']}", headers=shop.auth
    ).get_json()
    assert [c["id"] for c in rest["campaigns"]] == [made[0]] and rest["next_cursor"] is None
    scheduled = cclient.get("/v1/campaigns?status=scheduled", headers=shop.auth).get_json()
    assert [c["id"] for c in scheduled["campaigns"]] == [made[2], made[1]]
    assert cclient.get("/v1/campaigns?cursor=x", headers=shop.auth).status_code == 422
    assert cclient.get("/v1/campaigns?status=paused", headers=shop.auth).status_code == 422
    other = Shop(cclient, own, "other")
    assert cclient.get(f"/v1/campaigns/{made[1]}", headers=other.auth).status_code == 404
    for campaign_id in made[1:]:
        cclient.delete(f"/v1/campaigns/{campaign_id}", headers=shop.auth)


# ---- Redis lost, worker killed
def flush_namespace(own: Settings, names: Names) -> int:
    """Every Redis key of this namespace (Pushbox's and RQ's), as if Redis were lost;
    never FLUSHALL: other test runs share this Redis."""
    r = redis.Redis.from_url(own.redis_url)
    keys = [*r.scan_iter(match=f"{own.redis_prefix}:*", count=1000)]
    keys += [*r.scan_iter(match=names.campaign_rq_keys, count=1000)]
    if keys:
        r.delete(*keys)
    r.close()
    return len(keys)


def test_redis_flushed_while_scheduled_the_reconciler_queues_it_again(
    cclient, own, cnames, rabbit, worker
):
    shop = Shop(cclient, own, "flushed")
    device = shop.device()
    created = shop.create(send_at=(datetime.now(UTC) + timedelta(seconds=8)).isoformat())
    pushbox = bootstrap(own, role="test-campaigns")
    try:
        jobs = pushbox.campaigns.jobs
        assert jobs.knows(created["id"], "normal")
        assert flush_namespace(own, cnames) > 0
        assert not jobs.knows(created["id"], "normal")
        assert shop.get(created["id"])["status"] == "scheduled"  # the premise: not run yet
        out = subprocess.run(
            [sys.executable, "-m", "dispatcher.campaigns", "reconcile"],
            cwd=ROOT,
            env=settings_env(own),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert f"1 queued again ({created['id']})" in out.stdout
        assert jobs.knows(created["id"], "normal")
    finally:
        pushbox.close()
    done = shop.finished(created["id"])
    assert (done["status"], done["published"]) == ("done", 1)
    assert ids_in(rabbit, cnames, device) == [created["id"]]


def test_worker_killed_mid_campaign_finishes_after_restart_nothing_doubled(
    cclient, own, cnames, rabbit, worker
):
    shop = Shop(cclient, own, "killed")
    devices = [shop.device() for _ in range(3 * CHUNK)]
    with chunks_held(own):
        created = shop.create()
        assert eventually(lambda: pending(rabbit, cnames, devices[0]), 30)
        worker.kill9()  # the first chunk published, not yet counted
    assert shop.get(created["id"])["status"] == "running"
    worker.start()  # it queues again what Redis does not hold alive, then runs it
    done = shop.finished(created["id"])
    assert (done["status"], done["targets"], done["published"]) == ("done", 30, 30)
    for i, device in enumerate(devices):
        got = ids_in(rabbit, cnames, device)
        assert set(got) == {created["id"]}, i  # at least once; the SDK dedupes copies
        assert len(got) == (2 if i < CHUNK else 1), i  # the first chunk ran twice
    conn = mysql(own)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*), SUM(published) FROM campaign_chunks WHERE campaign_id = %s",
            (created["id"],),
        )
        assert cur.fetchone() == (3, 30)
    conn.close()
    assert "queued again" in worker.log.read_text()


def test_a_device_using_its_session_counts_as_seen(cclient, own, cnames, rabbit, worker):
    """Activity reaches MySQL (where seen_within_s looks) at most every 10 minutes a
    device, in the round trip that marks it present."""
    shop = Shop(cclient, own, "seen")
    device, token, headers = device_session(cclient, shop.app)
    conn = mysql(own)
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE devices SET last_active_at = UTC_TIMESTAMP(6) - INTERVAL 2 DAY WHERE id = %s",
            (device,),
        )
    conn.commit()
    seen = {"seen_within_s": 3600}
    assert shop.finished(shop.create(audience=seen)["id"])["targets"] == 0
    r = redis.Redis.from_url(own.redis_url)
    r.delete(cnames.activity_written_key(device))  # as ten minutes later
    r.close()
    assert cclient.get("/v1/device", headers=headers).status_code == 200
    assert shop.finished(shop.create(audience=seen)["id"])["targets"] == 1
    conn.close()
    take_all(rabbit, cnames, device)


def test_a_campaign_wakes_the_devices_it_reached_that_have_a_push_token(
    cclient, own, cnames, rabbit, worker, fcm_standin
):
    """One wake job a chunk names exactly the devices of that chunk with a token (the
    wake worker, here in this process, decides per device and counts `woken`)."""
    import threading

    from dispatcher.platforms.wake_worker import WakeWorker

    shop = Shop(cclient, own, "wakes")
    r = cclient.put(
        "/v1/app/credentials/fcm",
        json={"service_account": fcm_standin.service_account},
        headers=shop.auth,
    )
    assert r.status_code == 200, r.get_json()
    tokens = [f"fcm-campaign-{i}-" + "x" * 30 for i in range(3)]
    woken = [shop.device(push_token={"provider": "fcm", "token": t}) for t in tokens]
    asleep = shop.device(platform="ios")  # no token: nothing to wake
    outside = shop.device(
        push_token={"provider": "fcm", "token": "fcm-outside-" + "y" * 30}, platform="web"
    )
    pushbox = bootstrap(own, role="test-campaign-wakes")
    wakes = WakeWorker(pushbox)
    thread = threading.Thread(target=wakes.run, daemon=True)
    thread.start()
    try:
        created = shop.create(audience={"platforms": ["android", "ios"]}, title="Sale")
        assert shop.finished(created["id"])["published"] == 4
        done = shop.until(created["id"], lambda c: c["woken"] == 3)
        assert done["woken"] == 3
        sent = [s.json()["message"] for s in fcm_standin.sends()]
        assert sorted(m["token"] for m in sent) == sorted(tokens)  # not `outside`'s
        assert {m["data"]["pushbox_id"] for m in sent} == {created["id"]}
    finally:
        wakes.stop()
        thread.join(15)
        pushbox.close()
    for device in [*woken, asleep, outside]:
        take_all(rabbit, cnames, device)
