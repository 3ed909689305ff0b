"""What every benchmark shares: where the stack is, its credentials, a fleet of
registered devices, clean-up, raw clients for the baselines, and the results file.

The stack is the one `make up` started (nginx at PUSH_BENCH_URL, default
http://127.0.0.1:8080); settings come from the same PUSH_* environment as the stack's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pika
import pymysql
import redis
import requests
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError

from bench.client import Connection, bearer
from pushbox_core.names import LANES, Names
from pushbox_core.settings import Settings
from scripts.stack import Supervisor

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# the figures of the latest runs, merged; a run on another broker (a cluster) keeps its
# own: PUSH_BENCH_LATEST=cluster.json (its `machine` says which broker)
LATEST = RESULTS_DIR / (os.environ.get("PUSH_BENCH_LATEST") or "latest.json")

# the fleet of `make bench` and of the modules that register their own (10,000);
# PUSH_BENCH_FLEET=5000 measures a smaller one (where a broker cannot hold 10,000)
FLEET_SIZE = int(os.environ.get("PUSH_BENCH_FLEET") or 10_000)
PAYLOAD_TEXT = "x" * 400  # message bodies of about 500 bytes, as in BASELINE.md


# ---- where and who
def device_redis_keys(r: redis.Redis, nm: Names, ids: list[str]) -> Iterable[list[str]]:
    """Every Redis key of these devices (sessions, session index, presence, holder),
    a thousand devices at a time."""
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        pipe = r.pipeline(transaction=False)
        for i in chunk:
            pipe.smembers(nm.device_sessions_key(i))
        keys: list[str] = []
        for i, hashes in zip(chunk, pipe.execute(), strict=True):
            keys += [nm.session_key(h) for h in hashes]
            keys += [nm.device_sessions_key(i), nm.presence_key(i), nm.holder_key(i)]
            keys.append(nm.activity_written_key(i))
        yield keys


def settings() -> Settings:
    return Settings.from_env()


def names(s: Settings | None = None) -> Names:
    s = s or settings()
    return Names(s.namespace, s.redis_prefix)


def base_url() -> str:
    return os.environ.get("PUSH_BENCH_URL", "http://127.0.0.1:8080").rstrip("/")


def admin_token() -> str:
    token = os.environ.get("PUSH_ADMIN_TOKEN")
    if token:
        return token
    path = ROOT / ".run" / "admin-token"
    if not path.exists():
        sys.exit(f"no admin token: set PUSH_ADMIN_TOKEN or start the stack (make up): {path}")
    return path.read_text().strip()


def check_stack() -> None:
    try:
        r = requests.get(base_url() + "/readyz", timeout=5)
    except requests.RequestException as e:
        sys.exit(f"the stack does not answer at {base_url()} ({e}); start it with `make up`")
    if r.status_code != 200:
        sys.exit(f"the stack is not ready at {base_url()}: {r.status_code} {r.text}")


# ---- figures and results
@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    baseline: float | None
    baseline_what: str | None
    higher_is_better: bool
    command: str = ""
    target: str | None = None  # what the issue asks, in words
    met: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


def machine() -> str:
    def run(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return "?"
        return (
            (out.stdout or out.stderr).strip().splitlines()[0]
            if (out.stdout or out.stderr)
            else "?"
        )

    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    s = settings()
    parts = [
        f"nproc {os.cpu_count()}",
        f"{cpu}",
        f"memory {mem_kb / 1024 / 1024:.1f} GiB",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
        broker_description(),
        f"MariaDB {mysql_scalar(s, 'SELECT VERSION()')}",
        f"Redis {redis_client(s).info('server').get('redis_version', '?')}",
        run(["nginx", "-v"]).replace("nginx version: ", ""),
        run(["mosquitto", "-h"]).replace("mosquitto version", "mosquitto"),
    ]
    return ", ".join(parts)


@dataclass(frozen=True)
class BrokerNode:
    """A RabbitMQ node the stack is connected to: the process listening on the port of
    one of its URLs (PUSH_RABBITMQ_URLS, else PUSH_RABBITMQ_URL), wherever it came
    from (the machine's broker, `make cluster-up`'s nodes, a test's)."""

    port: int
    pid: int
    nodename: str | None  # from the node's environment; None: the CLI's default node
    home: str | None  # where its Erlang cookie is

    def files(self) -> int | None:
        """Its open-files limit (about one a device queue a broadcast writes to)."""
        try:
            for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        except (OSError, IndexError, ValueError):
            pass
        return None

    def ctl(self, tool: str = "rabbitmqctl") -> tuple[list[str], dict[str, str]]:
        """(argv prefix, environment) of a RabbitMQ CLI call to this very node."""
        if self.nodename is None:  # the machine's own: its CLI knows it (and its cookie)
            return [tool], dict(os.environ)
        scripts = Path("/usr/lib/rabbitmq/bin")
        binary = scripts / tool if (scripts / tool).exists() else Path(tool)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=self.home or env.get("HOME", ""),
            RABBITMQ_CTL_DIST_PORT_MIN="0",  # any free port: not the range every
            RABBITMQ_CTL_DIST_PORT_MAX="0",  # other rabbitmqctl here shares
        )
        return [str(binary), "-n", self.nodename], env

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.kill(self.pid, sig)

    def run(self, *args: str, tool: str = "rabbitmqctl", timeout: float = 120) -> str:
        argv, env = self.ctl(tool)
        return subprocess.run(
            [*argv, *args], env=env, capture_output=True, text=True, check=True, timeout=timeout
        ).stdout


def _listening_inodes(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                    found.add(cols[9])
    return found


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


_found_nodes: dict[tuple[str, ...], list[BrokerNode]] = {}


def broker_nodes(s: Settings | None = None) -> list[BrokerNode]:
    """The nodes the stack's URLs name, found by the port each listens on (an Erlang
    beam.smp process of this machine with that socket); a URL whose port no local
    process listens on is left out. Looked up again once one of them has gone."""
    s = s or settings()
    known = _found_nodes.get(s.broker_urls)
    if known and all(_cpu_s(n.pid) > 0 for n in known):
        return known
    _found_nodes[s.broker_urls] = found = _find_nodes(s)
    return found


def _find_nodes(s: Settings) -> list[BrokerNode]:
    beams = _pids(["-x", "beam.smp"])
    nodes = []
    for url in s.broker_urls:
        port = urllib.parse.urlparse(url).port or 5672
        inodes = {f"socket:[{i}]" for i in _listening_inodes(port)}
        for pid in beams:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            if any(_readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                env = _environ(pid)
                nodes.append(BrokerNode(port, pid, env.get("RABBITMQ_NODENAME"), env.get("HOME")))
                break
    return nodes


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def broker_open_files() -> int | None:
    """The smallest open-files limit of the nodes the stack uses (None when none is
    readable): each needs about one file per device queue a broadcast writes to
    (docs/capacity.md)."""
    limits = [f for f in (n.files() for n in broker_nodes()) if f is not None]
    return min(limits) if limits else None


def broker_description() -> str:
    """Which broker the figures were measured on: `machine` in the results says it."""
    s = settings()
    nodes = broker_nodes(s)
    if not nodes:
        return f"RabbitMQ at {', '.join(s.broker_urls)} (not on this machine: not measured)"
    try:
        version = nodes[0].run("-q", "version", timeout=30).strip()
    except (OSError, subprocess.SubprocessError):
        version = "?"
    each = ", ".join(
        f"{n.nodename or 'the machine broker'} on :{n.port} (open files {n.files()})" for n in nodes
    )
    urls = len(s.broker_urls)
    shape = f"{urls}-node cluster" if urls > 1 else "one node"
    if len(nodes) < urls:
        shape += f" ({len(nodes)} of them running here)"
    return f"RabbitMQ {version}, {shape}: {each}; {s.queue_type} lanes"


def load() -> list[float]:
    """The machine's load averages (1, 5, 15 minutes): others' work shares the cores."""
    return [round(x, 2) for x in os.getloadavg()]


def fanout_refusal(devices: int) -> str | None:
    """Why a broadcast to `devices` device queues is not run on this broker, or None: a
    fanout to more queues than the broker may open files for thrashes for minutes, and
    RabbitMQ 3.10 then lost its file handle cache here (docs/capacity.md)."""
    files = broker_open_files()
    if files is not None and files < devices + 1000:
        return f"RabbitMQ may open only {files} files; scripts/install.sh"
    return None


# ---- where the CPU goes
def _pids(args: list[str]) -> list[int]:
    out = subprocess.run(["pgrep", *args], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def stack_processes() -> dict[str, list[int]]:
    """The processes of the stack on this machine, by part: the API workers, nginx and
    the wake worker of the stack `make up` started (.run/), the local servers, and this
    benchmark."""
    parts: dict[str, list[int]] = {"api": [], "nginx": [], "wakes": []}
    for name, pid in Supervisor(ROOT / ".run").pids().items():
        if name.startswith("api-"):  # the workers do the work; their master waits
            parts["api"] += _pids(["-P", str(pid)])
        elif name == "nginx":
            parts["nginx"] = [pid, *_pids(["-P", str(pid)])]
        elif name == "wakes":
            parts["wakes"] = [pid]
    parts["rabbitmq"] = [n.pid for n in broker_nodes()]  # summed over a cluster's nodes
    parts["mysql"] = _pids(["-x", "mariadbd"]) or _pids(["-x", "mysqld"])
    parts["redis"] = _pids(["-x", "redis-server"])
    return parts


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def program_env(name: str) -> dict[str, str] | None:
    """The environment a program of the stack (.run/) runs with, read from /proc; None
    when it does not run or that cannot be read."""
    pid = Supervisor(ROOT / ".run").pids().get(name)
    if pid is None:
        return None
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


class CpuMeter:
    """CPU seconds each part of the stack (and this benchmark) spent inside the block:
    where a figure's time goes, measured in the same run. `extra`: more processes to
    count, by part (a stand-in the benchmark started)."""

    def __init__(self, extra: dict[str, list[int]] | None = None):
        self.extra = extra or {}

    def __enter__(self) -> CpuMeter:
        self.parts = {**stack_processes(), **self.extra}
        self._before = {p: _cpu_s(p) for pids in self.parts.values() for p in pids}
        self._self = os.times()
        return self

    def __exit__(self, *_: object) -> None:
        now = os.times()
        self.seconds = {
            part: sum(_cpu_s(p) - self._before[p] for p in pids)
            for part, pids in self.parts.items()
            if pids
        }
        self.seconds["bench client"] = (now.user + now.system) - (
            self._self.user + self._self.system
        )

    def per(self, n: int) -> dict[str, float]:
        """Microseconds of CPU per unit of work (a send, a message), by part."""
        return {part: round(s / n * 1e6, 1) for part, s in self.seconds.items()}


def settle_broker(*, busy_below: float = 0.1, window_s: float = 1.0, limit_s: float = 60) -> float:
    """Wait until the broker is quiet (under `busy_below` of a core over `window_s`);
    returns the seconds waited. After a burst of persistent messages into many queues
    the broker goes on working for up to ~20 s (writing their indexes out), and whatever is
    measured next would pay for it."""
    started = time.perf_counter()
    if not stack_processes()["rabbitmq"]:
        print("  (no local RabbitMQ process to watch: not waiting for the broker)")
        return 0.0
    while time.perf_counter() - started < limit_s:
        with CpuMeter() as meter:
            time.sleep(window_s)
        if meter.seconds["rabbitmq"] < busy_below * window_s:
            return time.perf_counter() - started
    print(f"  (the broker was still busy after {limit_s:g} s)")
    return time.perf_counter() - started


def write_results(figures: Sequence[Figure]) -> Path:
    """Merge these figures into latest.json (same name: replaced) and keep this run's
    figures in a file of their own."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    desc = machine()
    new = [asdict(f) for f in figures]
    latest: dict[str, Any] = {"figures": []}
    if LATEST.exists():
        with contextlib.suppress(ValueError, OSError):
            latest = json.loads(LATEST.read_text())
    by_name = {f["name"]: f for f in latest.get("figures", [])}
    for f in new:
        by_name[f["name"]] = f
    order = [
        "registration_rate",
        "send_rate",
        "send_rate_vs_raw_publish",
        "send_rate_with_tokens",
        "broadcast_landing_s",
        "wake_rate",
        "drain_rate",
        "drain_rate_vs_mosquitto",
        "wakeup_p99_ms",
        "waiting_devices",
        "stream_drain_rate",
        "stream_drain_rate_vs_mosquitto",
        "stream_wakeup_p99_ms",
        "streaming_devices",
        "idle_device_broker_bytes",
        "idle_device_mysql_bytes",
        "idle_device_redis_bytes",
    ]
    merged = sorted(by_name.values(), key=lambda f: (order + [f["name"]]).index(f["name"]))
    ran_at = now.isoformat().replace("+00:00", "Z")
    doc = {"machine": desc, "ran_at": ran_at, "figures": merged}
    LATEST.write_text(json.dumps(doc, indent=2) + "\n")
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    run_file = RESULTS_DIR / f"{stamp}-{'-'.join(sorted({f.name for f in figures}))[:80]}.json"
    run_file.write_text(json.dumps({"machine": desc, "ran_at": ran_at, "figures": new}, indent=2))
    return LATEST


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:,.2f}"
    return f"{v:.3g}"


def print_table(figures: Sequence[Figure]) -> None:
    rows = [("figure", "value", "unit", "baseline", "ratio", "target", "met")]
    for f in figures:
        ratio = f.ratio
        rows.append(
            (
                f.name,
                _num(f.value),
                f.unit,
                _num(f.baseline),
                "-" if ratio is None else f"{ratio:.2f}x",
                f.target or "-",
                {True: "yes", False: "NO", None: "-"}[f.met],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for f in figures:
        if f.baseline_what:
            print(f"  {f.name}: baseline = {f.baseline_what}")


_recorded: list[Figure] = []  # written to latest.json in this process


def record(figures: Iterable[Figure]) -> list[Figure]:
    """Merge these figures into latest.json now, each as soon as it is measured (a run
    cut short, or a clean-up that takes minutes, still leaves it there); a figure
    recorded already is not written again. Returns them."""
    figures = list(figures)
    new = [f for f in figures if not any(f is r for r in _recorded)]
    if new:
        write_results(new)
        _recorded.extend(new)
    return figures


def finish(figures: Sequence[Figure]) -> None:
    """What `python -m bench.<name>` does at the end: record what is not yet, print."""
    record(figures)
    print_table(figures)
    print(f"written to {LATEST}")


# ---- raw clients (baselines, set-up and clean-up)
def rabbit_channel(s: Settings | None = None, *, confirm: bool = False) -> BlockingChannel:
    params = pika.URLParameters((s or settings()).broker_urls[0])
    params.heartbeat = 600
    params.blocked_connection_timeout = 60
    ch = pika.BlockingConnection(params).channel()
    if confirm:
        ch.confirm_delivery()
    return ch


def close_channel(ch: BlockingChannel) -> None:
    with contextlib.suppress(AMQPError, OSError):
        ch.connection.close()


def mysql_connect(s: Settings) -> pymysql.Connection:
    return pymysql.connect(
        host=s.mysql_host,
        port=s.mysql_port,
        user=s.mysql_user,
        password=s.mysql_password,
        database=s.mysql_database,
        charset="utf8mb4",
        autocommit=True,
    )


def mysql_scalar(s: Settings, sql: str, args: Any = None) -> Any:
    conn = mysql_connect(s)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def redis_client(s: Settings) -> redis.Redis:
    return redis.Redis.from_url(s.redis_url, decode_responses=True)


def in_threads(items: Sequence[T], threads: int, work: Callable[[list[T]], None]) -> None:
    """Split items into `threads` slices and run work(slice) on each, in parallel."""
    slices = [list(items[i::threads]) for i in range(threads)]
    errors: list[BaseException] = []

    def run(part: list[T]) -> None:
        try:
            work(part)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    ts = [threading.Thread(target=run, args=(p,)) for p in slices if p]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def delete_queues(queues: Sequence[str], threads: int = 4) -> None:
    def work(part: list[str]) -> None:
        ch = rabbit_channel()
        try:
            for q in part:
                ch.queue_delete(q)
        finally:
            close_channel(ch)

    in_threads(queues, threads, work)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: Iterable[float]) -> float:
    return percentile(list(values), 50)


# ---- apps and devices through the API
@dataclass
class Device:
    id: str
    secret: str
    token: str | None = None  # its session token, once opened
    push_token: str | None = None  # its APNs device token (64 hex digits), if it has one


def apns_token() -> str:
    return secrets.token_hex(32)


def push_token_body(token: str) -> dict:
    return {"push_token": {"provider": "apns", "token": token}}


@dataclass
class Fleet:
    """An app and devices registered in it, through nginx."""

    app: dict  # id, name, app_key, server_key
    devices: list[Device] = field(default_factory=list)

    @property
    def app_id(self) -> str:
        return str(self.app["id"])


def create_app(label: str) -> dict:
    r = requests.post(
        base_url() + "/v1/apps",
        json={"name": f"bench {label} {uuid.uuid4().hex[:8]}"},
        headers={"Authorization": f"Bearer {admin_token()}"},
        timeout=10,
    )
    if r.status_code != 201:
        sys.exit(f"could not create an app: {r.status_code} {r.text}")
    return r.json()


async def _each(
    items: Iterable[T], concurrency: int, work: Callable[[Connection, T], Awaitable[None]]
) -> None:
    """work(connection, item) for every item, by `concurrency` clients at once, each on
    a keep-alive connection of its own."""
    left = iter(items)

    async def client() -> None:
        c = Connection(base_url())
        try:
            for item in left:
                await work(c, item)
        finally:
            c.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def _register(
    app_key: str, n: int, concurrency: int, out: list[Device], push_tokens: bool
) -> float:
    """Register n devices into `out` as they come (a failure leaves the ones registered
    so far there, for removal); with push_tokens, as iPhones with an APNs token each."""
    tag = uuid.uuid4().hex[:10]

    async def one(c: Connection, i: int) -> None:
        body: dict[str, Any] = {"installation_id": f"bench-{tag}-{i}"}
        token = apns_token() if push_tokens else None
        if token is None:
            body["platform"] = "android"
        else:
            body.update(platform="ios", **push_token_body(token))
        a = await c.request("POST", "/v1/devices", body, {"X-App-Key": app_key})
        if a.status != 201:
            raise RuntimeError(f"registration answered {a.status}: {a.body[:300]!r}")
        reg = a.json()
        out.append(Device(str(reg["device_id"]), reg["device_secret"], push_token=token))

    started = time.perf_counter()
    await _each(range(n), concurrency, one)
    return time.perf_counter() - started


def register(fleet: Fleet, n: int, concurrency: int, *, push_tokens: bool = False) -> float:
    """Register n more devices in the fleet's app; returns the seconds it took."""
    return asyncio.run(_register(fleet.app["app_key"], n, concurrency, fleet.devices, push_tokens))


async def _open_sessions(devices: Sequence[Device], concurrency: int) -> None:
    async def one(c: Connection, d: Device) -> None:
        a = await c.request("POST", "/v1/sessions", {"device_id": d.id, "device_secret": d.secret})
        if a.status != 201:
            raise RuntimeError(f"session answered {a.status}: {a.body[:300]!r}")
        d.token = a.json()["session_token"]

    await _each([d for d in devices if d.token is None], concurrency, one)


def open_sessions(devices: Sequence[Device], concurrency: int = 16) -> None:
    asyncio.run(_open_sessions(devices, concurrency))


async def _give_push_tokens(devices: Sequence[Device], concurrency: int) -> None:
    async def one(c: Connection, d: Device) -> None:
        token = apns_token()
        a = await c.request("PATCH", "/v1/device", push_token_body(token), bearer(d.token or ""))
        if a.status != 200:
            raise RuntimeError(f"PATCH /v1/device answered {a.status}: {a.body[:300]!r}")
        d.push_token = token

    await _open_sessions(devices, concurrency)
    await _each([d for d in devices if d.push_token is None], concurrency, one)


def give_push_tokens(devices: Sequence[Device], concurrency: int = 16) -> None:
    """An APNs token for each device that has none (`PATCH /v1/device`, opening a
    session first where there is none)."""
    asyncio.run(_give_push_tokens(devices, concurrency))


def new_fleet(label: str, n: int, *, concurrency: int = 16, push_tokens: bool = False) -> Fleet:
    fleet = Fleet(create_app(label))
    if n:
        tokens = " with APNs tokens" if push_tokens else ""
        print(f"  registering {n} devices{tokens} for {label} ...", flush=True)
        try:
            register(fleet, n, concurrency, push_tokens=push_tokens)
        except BaseException:
            remove_fleet(fleet)  # what registered before the failure
            raise
    return fleet


def remove_fleet(fleet: Fleet) -> None:
    """Delete what the fleet made: device queues, the app's broadcast exchanges, the
    devices' Redis keys; the rows are marked deleted (Pushbox never removes rows)."""
    s = settings()
    nm = names(s)
    ids = [d.id for d in fleet.devices]
    delete_queues([q for i in ids for q in nm.device_queues(i)])
    ch = rabbit_channel(s)
    try:
        for lane in LANES:
            ch.exchange_delete(nm.broadcast_exchange(fleet.app_id, lane))
    finally:
        close_channel(ch)
    conn = mysql_connect(s)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE devices SET status = 'deleted', updated_at = UTC_TIMESTAMP(6)"
                " WHERE app_id = %s",
                (fleet.app_id,),
            )
    finally:
        conn.close()
    r = redis_client(s)
    for keys in device_redis_keys(r, nm, ids):
        r.delete(*keys)
    fleet.devices = []


class Shared:
    """One fleet of FLEET_SIZE devices reused by several benchmarks in one run."""

    fleet: Fleet | None = None


@contextlib.contextmanager
def fleet_of(label: str, n: int, fleet: Fleet | None = None, *, push_tokens: bool = False):
    """The given fleet (not removed after), or a new one of n devices (removed after).
    With push_tokens every device has an APNs token (the given fleet's get one)."""
    if fleet is not None and len(fleet.devices) >= n:
        if push_tokens and any(d.push_token is None for d in fleet.devices):
            print(f"  {label}: an APNs token for every device (PATCH /v1/device) ...", flush=True)
            give_push_tokens(fleet.devices)
        yield fleet
        return
    own = new_fleet(label, n, push_tokens=push_tokens)
    try:
        yield own
    finally:
        print(f"  removing the {label} devices ...", flush=True)
        remove_fleet(own)


def command(module: str) -> str:
    return f"python -m bench.{module}  (or make bench)"


# ---- raw publishing with many confirms in flight
def pushbox_message(kind: str = "broadcast", priority: str | None = None) -> tuple[bytes, Any]:
    """One message in Pushbox's wire format, with the properties Pushbox publishes."""
    from dispatcher import messages as msgs

    m = msgs.build(kind, msgs.Content(title="bench", body=PAYLOAD_TEXT, priority=priority))
    props = pika.BasicProperties(
        delivery_mode=2,
        message_id=m.id,
        headers=m.headers(),
        expiration=str(m.ttl_s * 1000),
        content_type="application/json",
    )
    return m.encode(), props


def publish_many(
    exchange: str,
    messages: Sequence[tuple[str, bytes, Any]],
    *,
    window: int = 1_000,
    mandatory: bool = True,
) -> float:
    """Publish (routing key, body, properties) with `window` confirms in flight, on one
    channel of pika's asynchronous adapter (the blocking one waits for each confirm).
    Returns the seconds from the first publish to the last confirm."""
    from pika.adapters.select_connection import SelectConnection

    n = len(messages)
    st: dict[str, Any] = {"sent": 0, "confirmed": 0, "returned": 0, "nacked": 0}
    st.update(t0=0.0, t1=0.0)
    pending: collections.deque[int] = collections.deque()
    channels: list[Any] = []

    def pump() -> None:
        ch = channels[0]
        while st["sent"] < n and len(pending) < window:
            key, body, props = messages[st["sent"]]
            ch.basic_publish(exchange, key, body, props, mandatory=mandatory)
            st["sent"] += 1
            pending.append(st["sent"])

    def on_confirm(frame: Any) -> None:
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            st["nacked"] += 1
        tag = method.delivery_tag
        if method.multiple:
            while pending and pending[0] <= tag:
                pending.popleft()
                st["confirmed"] += 1
        else:
            pending.remove(tag)
            st["confirmed"] += 1
        if st["confirmed"] >= n:
            st["t1"] = time.perf_counter()
            channels[0].close()
        else:
            pump()

    def on_channel_closed(_ch: Any, reason: Any) -> None:
        st["closed"] = repr(reason)
        if conn.is_open:
            conn.close()

    def on_channel(ch: Any) -> None:
        channels.append(ch)
        ch.add_on_close_callback(on_channel_closed)
        ch.add_on_return_callback(lambda *a: st.__setitem__("returned", st["returned"] + 1))

        def go(_frame: Any) -> None:
            st["t0"] = time.perf_counter()
            pump()

        ch.confirm_delivery(on_confirm, callback=go)

    conn = SelectConnection(
        pika.URLParameters(settings().broker_urls[0]),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_close_callback=lambda c, e: c.ioloop.stop(),
    )
    conn.ioloop.start()
    if st["returned"] or st["nacked"] or not st["t1"]:
        raise RuntimeError(f"raw publish went wrong: {st}")
    return st["t1"] - st["t0"]


def ready_counts(queues: Sequence[str], threads: int = 4) -> dict[str, int]:
    """Ready messages of each queue, by passive declares over AMQP (rabbitmqctl
    list_queues times out on busy queues at this scale). A missing queue counts -1."""
    counts: dict[str, int] = {}

    def work(part: list[str]) -> None:
        ch = rabbit_channel()
        try:
            for q in part:
                try:
                    counts[q] = ch.queue_declare(q, passive=True).method.message_count
                except pika.exceptions.ChannelClosedByBroker:
                    counts[q] = -1
                    ch = rabbit_channel()
        finally:
            close_channel(ch)

    in_threads(queues, threads, work)
    return counts
