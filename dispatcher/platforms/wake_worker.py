"""The wake worker (`python -m dispatcher.platforms`): consumes wake jobs and asks FCM
and APNs to show a message or wake an app, for each target device that has an active
push token and is not connected.

Two threads: pika's (consuming, acking) and an asyncio loop's (HTTP/2 clients, one per
app and platform, many pushes in flight on each). A job is acked once every push it
made is settled and counted; a worker that dies mid-job gets it again, and a device
may then be pushed twice (the app dedupes by the message id it syncs). MySQL and Redis
calls run in threads of the loop's executor, so they never block the pushes in flight.

What a job costs, kept small (a send to one device is one job; docs/wakes.md):
- the app's row, its credentials, the job's devices with a token and which of them
  are connected are read in one executor hop, fresh for every job: a change made
  anywhere (`PATCH /v1/app` to `push_content: private`, new or deleted credentials)
  holds for the next job. (A cache of the app and its credentials saved two MySQL
  round trips a job but let a push go out up to its lifetime after the app switched
  to private content, or with replaced credentials: not kept.)
- the counters `woken` and `wake_failed` go through the process's Tally (one UPDATE a
  counter every TALLY_FLUSH_S for every job counted meanwhile), not a transaction a
  job. A job is acked once its counts are handed to the tally, before they are
  written: a worker killed in between loses up to TALLY_FLUSH_S of these counts, or
  all that wait while MySQL is down (statistics: no push or message depends on them;
  a redelivered job would count twice anyway). A clean stop (TERM) writes them before
  the process exits. While MySQL is down they wait in memory and are tried again,
  less often the longer it lasts (Tally); the jobs go on.
- jobs settled together are acked together: one wake-up of pika's thread, and one
  ack with `multiple` for the oldest deliveries when all of them are done.

The queue stays the only source of truth: a push that fails loses nothing; the device
gets the message on its next sync. Decisions made here, just before sending:
- a connected device (waiting in a sync, streaming) is skipped;
- a silent wake: at most one per device per PUSH_WAKE_COALESCE_S, at most
  APNS_SILENT_PER_HOUR per device an hour to APNs, none when the device's queues are
  empty by then;
- a dead token is marked invalid (never used again until the device sends a new one);
  credentials Google or Apple refuse are marked rejected and tried again at most once
  a REJECTED_RETRY_S.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import cast

from pika.exceptions import AMQPError

from device_registry.store import App, Credential, WakeTarget
from dispatcher.bootstrap import Pushbox, bootstrap
from dispatcher.delivery.tally import Tally
from dispatcher.platforms.apns import ApnsClient, ApnsCredentials
from dispatcher.platforms.credentials import open_credentials, reseal_all
from dispatcher.platforms.delivery import deliver
from dispatcher.platforms.fcm import FcmClient, FcmCredentials
from dispatcher.platforms.push import Outcome, PlatformClient, Push
from dispatcher.platforms.wake_jobs import WakeJob
from pushbox_core import metrics
from pushbox_core.errors import DependencyDown, PushboxError
from pushbox_core.rabbit import Nodes
from pushbox_core.redis_client import redis_errors
from pushbox_core.settings import Settings

log = logging.getLogger("wakes")

PREFETCH = 20  # jobs in hand at once (a broadcast job may hold thousands of pushes)
IN_FLIGHT_MAX = 500  # pushes awaiting an answer, over every client
BATCH = 1000  # devices read, checked and pushed at a time
APNS_SILENT_PER_HOUR = 3
REJECTED_RETRY_S = 60
RECONNECT_MAX_S = 10.0
CLOSE_CLIENTS_S = 3.0  # at a stop, for the HTTP/2 clients to close
STOP_CHECK_S = 0.5  # how soon the consuming thread sees a stop asked for
STOP_FLUSH_S = 5.0  # on a clean stop, how long unwritten counts wait for MySQL
FAILED = ("invalid_token", "credentials_rejected", "failed")


class WakeWorker:
    def __init__(self, pushbox: Pushbox, *, tally: Tally | None = None):
        """`tally`: where the counts go (the process's own, pushbox.tally, unless told)."""
        self.pb = pushbox
        self.tally = tally if tally is not None else pushbox.tally
        self.settings = pushbox.settings
        self.stopping = False
        self.handled: Counter[str] = Counter()
        self._nodes = Nodes(
            self.settings.broker_urls, name="pushbox-wakes-consumer", heartbeat_s=60
        )
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        # by (app id, provider, sealed credentials): new credentials get a new client
        self._clients: dict[tuple[str, str, str], PlatformClient] = {}
        self._retired: list[PlatformClient] = []  # of refused credentials: closed at the end
        self._retrying: set[tuple[str, str, str]] = set()  # refused credentials tried again
        self._in_flight = asyncio.Semaphore(IN_FLIGHT_MAX)
        self._counting = threading.Lock()

    # ---- consuming (pika's thread)
    def run(self) -> None:
        self._loop_thread.start()
        delay = 0.5
        while not self.stopping:
            try:
                self._consume()
                delay = 0.5
            except (AMQPError, DependencyDown, OSError) as e:
                metrics.dependency_failed(e if isinstance(e, DependencyDown) else "rabbitmq")
                log.warning("wake worker lost a dependency (%s); retrying in %.1fs", e, delay)
                time.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
        # the counts first: the supervisor's stop wait (10 s) may end before the rest
        self._flush_counts()
        try:
            self._call(self._close_clients()).result(CLOSE_CLIENTS_S)
        except Exception as e:  # the process ends either way; the HTTP/2 streams with it
            log.warning("platform clients not closed cleanly: %r", e)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _flush_counts(self) -> None:
        """A clean stop writes the counts of the jobs it acked; while MySQL is down it
        tries again for STOP_FLUSH_S, then says what is lost."""
        deadline = time.monotonic() + STOP_FLUSH_S
        while not self.tally.flush():
            if time.monotonic() > deadline:
                log.warning("stopping with %d wake counts not written", self.tally.pending())
                return
            time.sleep(0.5)

    def stop(self, *_: object) -> None:
        self.stopping = True

    def _consume(self) -> None:
        conn = self._nodes.connect()
        try:
            self.pb.topology.ensure_globals()  # declares the wake queue
            ch = conn.channel()
            ch.basic_qos(prefetch_count=PREFETCH)

            unsettled: set[int] = set()  # delivered, not acked or nacked yet (pika's thread)
            settled_jobs: list[tuple[int, bool]] = []  # (tag, requeue), for pika's thread
            handing = threading.Lock()

            def settle() -> None:  # pika's thread: every job settled since the last call
                with handing:
                    jobs = settled_jobs[:]
                    settled_jobs.clear()
                self._settle(conn, ch, jobs, unsettled)

            def on_job(_ch, method, _props, body: bytes) -> None:
                tag = method.delivery_tag
                unsettled.add(tag)
                future = self._call(self.handle(body))

                def settled(f: Future) -> None:
                    error = f.exception()
                    requeue = isinstance(error, DependencyDown)
                    if error is not None:
                        log.warning("wake job %s: %r", "requeued" if requeue else "dropped", error)
                    with handing:
                        settled_jobs.append((tag, requeue))
                        first = len(settled_jobs) == 1
                    if first:  # one wake-up of pika's thread for the jobs settled meanwhile
                        conn.add_callback_threadsafe(settle)

                future.add_done_callback(settled)

            def tick() -> None:  # process_data_events returns at least this often
                conn.call_later(STOP_CHECK_S, tick)

            ch.basic_consume(self.pb.names.wake_queue, on_job)
            log.info("consuming %s", self.pb.names.wake_queue)
            tick()
            while not self.stopping:
                # no time limit: with one, each call makes and drops a pika timer, and
                # under load a call returns at every job (py-spy: a fifth of the
                # thread's time went to those timers)
                conn.process_data_events(time_limit=None)
        finally:
            if conn.is_open:
                conn.close()

    @staticmethod
    def _settle(conn, ch, jobs: list[tuple[int, bool]], unsettled: set[int]) -> None:
        """Ack the jobs settled together (pika's thread): the oldest deliveries still
        unsettled, when all of them are done now, in one ack with `multiple` (one-device
        jobs mostly end in the order they came), the others one by one."""
        if not ch.is_open:
            return  # the broker gives them to the next consumer
        acks = {tag for tag, requeue in jobs if not requeue}
        for tag, requeue in jobs:
            if requeue:  # MySQL or Redis down: the job comes back, in a moment

                def nack(tag: int = tag) -> None:
                    unsettled.discard(tag)
                    if ch.is_open:
                        ch.basic_nack(tag, requeue=True)

                conn.call_later(0.5, nack)  # unsettled until then: no multiple ack covers it
        oldest: list[int] = []
        for tag in sorted(unsettled):
            if tag not in acks:
                break
            oldest.append(tag)
        if len(oldest) > 1:
            ch.basic_ack(oldest[-1], multiple=True)
            acks.difference_update(oldest)
            unsettled.difference_update(oldest)
        for tag in sorted(acks):
            ch.basic_ack(tag)
            unsettled.discard(tag)

    def _call(self, coro) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # ---- one job (the loop's thread)
    async def handle(self, body: bytes) -> None:
        try:
            job = WakeJob.decode(body)
        except (ValueError, TypeError) as e:
            log.warning("malformed wake job dropped: %s", e)
            return
        if job.expires_ms <= time.time() * 1000:
            return  # expired: nothing to wake for
        after = 0
        while True:
            app, creds, targets, connected = await self._db(self._read, job, after)
            if app is None or not targets:
                return
            await self._wake(job, app, creds, targets, connected)
            if len(targets) < BATCH:
                return  # that was the last batch: no need to ask again
            after = int(targets[-1].device_id)

    def _read(
        self, job: WakeJob, after: int
    ) -> tuple[App | None, dict[str, Credential], list[WakeTarget], set[str]]:
        """In an executor thread, one hop: the app, the job's next batch of devices with
        an active token, the app's credentials (read again for each batch: credentials
        refused meanwhile are not used) and which of the devices are connected."""
        store = self.pb.store
        app = store.app(job.app_id)
        if app is None:
            return None, {}, [], set()
        targets = store.wake_targets(
            job.app_id, job.device_ids, after=after, limit=BATCH, registered_by_ms=job.created_ms
        )
        if not targets:
            return app, {}, [], set()
        creds = store.credentials(job.app_id)
        connected = self.pb.delivery.connections.connected([t.device_id for t in targets])
        return app, creds, targets, connected

    async def _wake(
        self,
        job: WakeJob,
        app: App,
        creds: dict[str, Credential],
        targets: list[WakeTarget],
        connected: set[str],
    ) -> None:
        counts: Counter[tuple[str, str]] = Counter()
        self._count("skipped_connected", len(connected))
        usable = []
        for t in targets:
            if t.device_id in connected:
                continue
            cred = creds.get(t.provider)
            if cred is None or self.pb.sealer is None:
                self._count("no_credentials")
            elif not await self._usable(app, cred):
                counts[(job.message_id, "wake_failed")] += 1  # refused credentials
            else:
                usable.append(t)
        if job.mode == "silent":
            usable = await self._db(self._silent_allowed, usable)
        sends = []
        for t in usable:
            client = self._client(app, t.provider, creds[t.provider])
            if client is not None:
                sends.append(self._push(client, job, app, t, creds[t.provider]))
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("a push failed unexpectedly: %r", outcome)
                counts[(job.message_id, "wake_failed")] += 1
            elif outcome.accepted:
                counts[(job.message_id, "woken")] += 1
            elif outcome.result in FAILED:
                counts[(job.message_id, "wake_failed")] += 1
        if counts:
            self.tally.add(dict(counts))  # written within TALLY_FLUSH_S (module doc)

    async def _usable(self, app: App, cred: Credential) -> bool:
        """Active credentials are; rejected ones only once a REJECTED_RETRY_S, to the one
        worker and batch that wins the retry (the others count the push as failed)."""
        if cred.status != "rejected":
            return True
        key = (app.id, cred.provider, cred.sealed)
        if key in self._retrying:
            return True
        won = await self._db(
            self.pb.store.retry_rejected_credential,
            app.id,
            cred.provider,
            cred.sealed,
            REJECTED_RETRY_S,
        )
        if won:
            self._retrying.add(key)
        return won

    async def _push(
        self, client: PlatformClient, job: WakeJob, app: App, t: WakeTarget, cred: Credential
    ) -> Outcome:
        push = Push(
            provider=t.provider,  # type: ignore[arg-type]
            token=t.token,
            token_registered_at=t.token_at or datetime.now(UTC),
            mode=job.mode,  # type: ignore[arg-type]
            message_id=job.message_id,
            message_kind=job.kind,
            title=job.title,
            body=job.body,
            data=job.data,
            collapse_key=job.collapse_key,
            ttl_s=max(1, int(job.expires_ms / 1000 - time.time())),
            private=app.push_content == "private",
        )
        async with self._in_flight:
            outcome = await deliver(client, push)
        self._count(f"{t.provider}_{outcome.result}")
        metrics.WAKES.labels(t.provider, outcome.result).inc()
        key = (app.id, t.provider, cred.sealed)
        if outcome.accepted and key in self._retrying:  # the retried credentials work again
            self._retrying.discard(key)
            await self._db(self.pb.store.credential_accepted, app.id, t.provider, cred.sealed)
        if outcome.result == "invalid_token":
            marked = await self._db(
                self.pb.store.mark_token_invalid, t.device_id, t.token, outcome.reason
            )
            if marked:  # once per token: a second push to it meanwhile says nothing new
                self.pb.events.token_invalid(app.id, t.device_id, t.provider, outcome.reason)
            log.info("device %s: %s token invalid (%s)", t.device_id, t.provider, outcome.reason)
        elif outcome.result == "credentials_rejected":
            await self._credentials_rejected(app, t.provider, cred, outcome)
        elif outcome.result == "failed":
            log.info("push to device %s failed: %s %s", t.device_id, outcome.reason, outcome.detail)
        return outcome

    async def _credentials_rejected(
        self, app: App, provider: str, cred: Credential, outcome: Outcome
    ) -> None:
        """Marked rejected (once for the many pushes that learn it together); the client
        is retired, not closed: pushes still in flight on it finish."""
        key = (app.id, provider, cred.sealed)
        self._retrying.discard(key)
        client = self._clients.pop(key, None)
        if client is None:
            return  # another push of this client reported it already
        self._retired.append(client)
        await self._db(
            self.pb.store.mark_credential_rejected, app.id, provider, cred.sealed, outcome.reason
        )
        log.warning("app %s: %s refused its credentials (%s)", app.id, provider, outcome.reason)

    def _silent_allowed(self, targets: list[WakeTarget]) -> list[WakeTarget]:
        """Silent wakes (in an executor thread): none to a device whose queues are empty;
        then one a device per coalescing window, and at most APNS_SILENT_PER_HOUR an hour
        to APNs (spent only on wakes that pass the checks before)."""
        pending = [t for t in targets if (self.pb.topology.pending(t.device_id) or 0) > 0]
        self._count("skipped_empty", len(targets) - len(pending))
        names, r = self.pb.names, self.pb.redis
        hour = int(time.time() // 3600)
        with redis_errors():
            pipe = r.pipeline(transaction=False)
            for t in pending:
                key = names.wake_coalesce_key(t.device_id)
                pipe.set(key, 1, nx=True, ex=self.settings.wake_coalesce_s)
            firsts = pipe.execute()
            allowed = [t for t, first in zip(pending, firsts, strict=True) if first]
            self._count("skipped_coalesced", len(pending) - len(allowed))
            apns = [t for t in allowed if t.provider == "apns"]
            if not apns:
                return allowed
            pipe = r.pipeline(transaction=False)
            for t in apns:
                key = names.wake_budget_key(t.device_id, hour)
                pipe.incr(key)
                pipe.expire(key, 3600)
            spent = pipe.execute()[::2]
        over = {t.device_id for t, n in zip(apns, spent, strict=True) if n > APNS_SILENT_PER_HOUR}
        self._count("skipped_apns_budget", len(over))
        return [t for t in allowed if t.device_id not in over]

    def _count(self, what: str, n: int = 1) -> None:
        with self._counting:
            self.handled[what] += n

    def _client(self, app: App, provider: str, cred: Credential) -> PlatformClient | None:
        """The app's client for a platform and these credentials, made on first use."""
        assert self.pb.sealer is not None
        key = (app.id, provider, cred.sealed)
        client = self._clients.get(key)
        if client is None:
            try:
                opened = open_credentials(cred, self.pb.sealer)
            except PushboxError as e:
                log.warning("app %s: %s credentials cannot be opened: %s", app.id, provider, e)
                return None
            if isinstance(opened, FcmCredentials):
                made: object = FcmClient.from_settings(opened, self.settings)
            else:
                assert isinstance(opened, ApnsCredentials)
                made = ApnsClient.from_settings(opened, self.settings)
            client = self._clients[key] = cast(PlatformClient, made)
        return client

    async def _close_clients(self) -> None:
        clients, self._clients = [*self._clients.values(), *self._retired], {}
        self._retired = []
        for client in clients:
            await client.aclose()

    async def _db(self, fn, *args, **kwargs):
        """A blocking call (MySQL, Redis, the broker's pool) off the loop's thread."""
        return await self._loop.run_in_executor(None, lambda: fn(*args, **kwargs))


def reseal() -> int:
    pushbox = bootstrap(Settings.from_env(), role="reseal")
    try:
        if pushbox.sealer is None:
            print("PUSH_SECRETS_KEY is not set", file=sys.stderr)
            return 2
        n = reseal_all(store=pushbox.store, sealer=pushbox.sealer)
    finally:
        pushbox.close()
    print(f"re-sealed {n} credentials with the first key of PUSH_SECRETS_KEY")
    return 0


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    pushbox = bootstrap(Settings.from_env(), role="wakes")
    worker = WakeWorker(pushbox)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run()
    pushbox.close()
    log.info("stopped: %s", dict(worker.handled))
