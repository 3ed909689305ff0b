"""Starts and stops a Pushbox stack on this machine: two push_api instances (gunicorn),
the dispatcher worker and nginx in front, each kept running by a supervisord of the
run directory's own. `make up` / `make down` / `make status` use it, and so do the
tests, with their own ports, namespace and run directory.

    python -m scripts.stack up|down|status

A process that dies is started again by supervisord within seconds, with no one
running `up` again; `up` itself starts whatever is not running and waits until each
program answers.
"""

from __future__ import annotations

import base64
import contextlib
import os
import resource
import secrets
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.xmlrpc import Faults, SupervisorTransport

from pushbox_core.metrics import MULTIPROC_ENV, fresh_dir
from pushbox_core.settings import Settings
from scripts.launcher import STARTED, alive, cmdline, end, proc, processes
from scripts.redis_setup import ensure_persistence

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"

# A program that dies after STARTSECS is started again at once; one that dies sooner
# failed to start, and is tried again after 1, 2, ... seconds, START_RETRIES times
# (then FATAL, until the next `up`). Long enough to catch an app that cannot boot
# (gunicorn's master exits about a second after its worker fails to import the app):
# otherwise that crash loop would spin without a pause.
STARTSECS = 2
START_RETRIES = 5
STOP_WAIT_S = 10  # then SIGKILL, to the whole process group
SUPERVISORD_STOP_S = 30
LOG_CHUNK = 1 << 16  # a log is read from its end, this much more at a time


def boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def answers(url: str, *, any_certificate: bool = False) -> bool:
    """GET `url` answers 200. `any_certificate`: for our own nginx on loopback, whose
    certificate may come from a CA this machine does not trust (the probe only asks
    whether it serves)."""
    context = ssl._create_unverified_context() if any_certificate else None
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as r:
            return r.status == 200
    except OSError:
        return False


NGINX_CONNECTIONS_MAX = 32_768  # two a waiting device (phone and upstream): 16,384 waiting
NGINX_FILES_MAX = 66_000  # a file a connection, with room to spare


def raise_open_files() -> int:
    """This process's soft open-files limit up to its hard one (Debian's soft default,
    1,024, would cap an API worker near 1,000 waiting syncs); returns the soft limit
    it got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 20 if hard == resource.RLIM_INFINITY else hard  # no file limit is infinite
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def nginx_files() -> tuple[int, int]:
    """(worker_rlimit_nofile, worker_connections) for nginx: as many files as it can
    surely get, the hard limit it starts under (only CAP_SYS_RESOURCE goes past it),
    up to NGINX_FILES_MAX, and connections to match, with a thousand files spare."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    files = NGINX_FILES_MAX if hard == resource.RLIM_INFINITY else min(NGINX_FILES_MAX, hard)
    return files, max(1_024, min(NGINX_CONNECTIONS_MAX, files - 1_000))


# ---- how up() knows a program answers
@dataclass(frozen=True)
class Answers:
    """Ready once GET `url` returns 200."""

    url: str
    any_certificate: bool = False

    def check(self, log: Path, pid: int) -> bool:
        return answers(self.url, any_certificate=self.any_certificate)


@dataclass(frozen=True)
class Says:
    """Ready once the running instance (`pid`) has written `word` to its log: what
    follows the launcher's start line for that pid."""

    word: str

    def check(self, log: Path, pid: int) -> bool:
        marker, word = f"{STARTED} {pid}\n".encode(), self.word.encode()
        try:
            with open(log, "rb") as f:  # from the end: a log grows for as long as it runs
                size, chunk = f.seek(0, os.SEEK_END), LOG_CHUNK
                while True:
                    f.seek(max(0, size - chunk))
                    text = f.read()
                    at = text.rfind(marker)
                    if at >= 0:
                        return word in text[at:]
                    if chunk >= size:
                        return False
                    chunk *= 4
        except OSError:
            return False


@dataclass(frozen=True)
class Program:
    """One process supervisord keeps running. Its stdout and stderr go to `log` in the
    run directory; `env` is added to the stack's environment."""

    name: str
    title: str  # what `make up` says it started
    argv: tuple[str, ...]
    ready: Answers | Says
    log: str = ""  # default: <name>.log
    env: dict[str, str] = field(default_factory=dict)
    stop_signal: str = "TERM"
    ready_within_s: float = 90  # a ceiling: a loaded machine boots slowly

    @property
    def log_name(self) -> str:
        return self.log or f"{self.name}.log"


RUNNING_STATES = ("STARTING", "RUNNING", "BACKOFF")
BROKER_SETTINGS = ("PUSH_RABBITMQ_URL", "PUSH_RABBITMQ_URLS", "PUSH_QUEUE_TYPE", "PUSH_RABBITMQCTL")


class Supervisor:
    """The supervisord of one run directory, reached over its unix socket (as
    `supervisorctl -c <run dir>/supervisord.conf` reaches it)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.conf = run_dir / "supervisord.conf"
        self.socket = run_dir / "supervisor.sock"
        self.pidfile = run_dir / "supervisord.pid"

    @property
    def rpc(self):  # the supervisor namespace of its XML-RPC interface
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def running(self) -> bool:
        try:
            return self.rpc.getState()["statename"] == "RUNNING"
        except OSError:  # no socket, or no one behind it
            return False

    def write_conf(self, programs: list[Program], minfds: int) -> None:
        """The whole configuration, from `programs` in their order: supervisord starts
        them in it and stops them the other way round."""

        def value(text: str) -> str:  # supervisord expands %(name)s in its values
            return text.replace("%", "%%")

        run = value(str(self.run_dir))
        parts = [
            f"""; written by scripts/stack.py at each `up`: edits here are lost
[unix_http_server]
file={run}/supervisor.sock
chmod=0700

[supervisord]
logfile={run}/supervisord.log
pidfile={run}/supervisord.pid
childlogdir={run}
minfds={minfds}
{"user=root" if os.geteuid() == 0 else ""}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{run}/supervisor.sock
"""
        ]
        for order, p in enumerate(programs, start=1):
            command = [str(VENV_BIN / "python"), "-m", "scripts.launcher", *p.argv]
            env = ",".join(f'{k}="{v}"' for k, v in p.env.items())
            parts.append(
                f"""
[program:{p.name}]
command={value(shlex.join(command))}
directory={value(str(ROOT))}
priority={order * 10}
autostart=true
autorestart=true
startsecs={STARTSECS}
startretries={START_RETRIES}
stopsignal={p.stop_signal}
stopwaitsecs={STOP_WAIT_S}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={run}/{value(p.log_name)}
stdout_logfile_maxbytes=0
"""
                + (f"environment={value(env)}\n" if env else "")
            )
        self.conf.write_text("".join(parts))

    def start(self, env: dict[str, str]) -> None:
        """supervisord, daemonized, with `env` for its programs to inherit. Its socket
        listens before the command returns."""
        done = subprocess.run(
            [str(VENV_BIN / "supervisord"), "-c", str(self.conf)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not self.running():
            raise RuntimeError(
                f"supervisord did not start ({self.run_dir}/supervisord.log):\n"
                + done.stdout
                + done.stderr
            )

    def reread(self) -> set[str]:
        """Apply a changed configuration, as `supervisorctl update` does: a program no
        longer in it is stopped and dropped, a changed one is stopped and replaced, a
        new one is added (supervisord starts what is added). Returns what was added
        or replaced."""
        added, changed, removed = self.rpc.reloadConfig()[0]
        for name in removed + changed:
            self.rpc.stopProcessGroup(name, True)
            self.rpc.removeProcessGroup(name)
        for name in added + changed:
            self.rpc.addProcessGroup(name)
        return set(added + changed)

    def info(self, name: str) -> dict:
        return self.rpc.getProcessInfo(name)

    def stop_program(self, name: str) -> None:
        try:
            self.rpc.stopProcess(name, True)
        except xmlrpc.client.Fault as e:
            if e.faultCode != Faults.NOT_RUNNING:
                raise

    def start_program(self, name: str) -> None:
        try:
            self.rpc.startProcess(name, False)
        except xmlrpc.client.Fault as e:
            if e.faultCode != Faults.ALREADY_STARTED:  # supervisord got there first
                raise

    def pids(self) -> dict[str, int]:
        """The pid of each program that runs (none when supervisord does not)."""
        if not self.running():
            return {}
        return {i["name"]: i["pid"] for i in self.rpc.getAllProcessInfo() if alive(i["pid"])}

    def orphans(self) -> list[int]:
        """What a supervisord of this run directory that died (kill -9, OOM) left
        running: its programs go on, unsupervised, holding their ports, and a new
        supervisord could start none of them. They are its session's processes."""
        try:
            sid = int(self.pidfile.read_text().strip())  # removed when it stops cleanly
            written = self.pidfile.stat().st_mtime
        except (OSError, ValueError):
            return []
        # before this boot, or its leader still there: that number names another
        # session now (a pid is not reused while a process of its session lives)
        if written < boot_time() or alive(sid):
            return []
        return [p.pid for p in processes() if p.session == sid and p.state != "Z"]

    def end_orphans(self) -> int:
        """End the orphans (see there); returns how many there were."""
        left = self.orphans()
        end(left)
        self.pidfile.unlink(missing_ok=True)
        return len(left)

    def shut_down(self) -> list[str]:
        """Stop every program (the last started first), then supervisord itself;
        returns what was running."""
        try:
            pid = int(self.pidfile.read_text().strip())
            was = [
                i["name"] for i in self.rpc.getAllProcessInfo() if i["statename"] in RUNNING_STATES
            ]
            self.rpc.stopAllProcesses(True)
            self.rpc.shutdown()
        except (OSError, ValueError):
            return []
        deadline = time.monotonic() + SUPERVISORD_STOP_S
        while alive(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"supervisord {pid} ({self.run_dir}) did not stop")
            time.sleep(0.1)
        return [*was, "supervisord"]


@dataclass
class Stack:
    run_dir: Path
    env: dict[str, str]
    nginx_port: int = 8080
    api_ports: tuple[int, ...] = (8081, 8082)
    with_dispatcher: bool = True
    tls_port: int = 8443  # HTTPS, when PUSH_TLS_CERT and PUSH_TLS_KEY are set
    # on a cluster (PUSH_RABBITMQ_URLS), each program tries the nodes from another one
    # first, so that their connections spread over the nodes; False: all in the order
    # given (a test that kills the node every connection is on)
    spread_nodes: bool = True

    @property
    def supervisor(self) -> Supervisor:
        return Supervisor(self.run_dir)

    @property
    def metrics_dir(self) -> Path:
        """Where every program writes its metrics (PROMETHEUS_MULTIPROC_DIR)."""
        return self.run_dir / "metrics"

    @property
    def tls(self) -> tuple[str, str] | None:
        """(certificate, key) files when nginx serves HTTPS."""
        cert, key = self.env.get("PUSH_TLS_CERT"), self.env.get("PUSH_TLS_KEY")
        if bool(cert) != bool(key):
            raise RuntimeError("set both PUSH_TLS_CERT and PUSH_TLS_KEY, or neither")
        return (str(Path(cert).resolve()), str(Path(key).resolve())) if cert and key else None

    @property
    def base_url(self) -> str:
        """Where clients reach the stack."""
        if self.tls:
            return f"https://127.0.0.1:{self.tls_port}"
        return f"http://127.0.0.1:{self.nginx_port}"

    def broker_env(self, i: int) -> dict[str, str]:
        """The broker settings of the i-th program, each written out (empty when unset):
        supervisord's programs inherit the environment it started with, so a broker
        setting changed since (or removed) must be in the program's own to count."""
        env = {k: self.env.get(k, "") for k in BROKER_SETTINGS}
        urls = [u for u in env["PUSH_RABBITMQ_URLS"].split(",") if u.strip()]
        if urls and self.spread_nodes:
            first = i % len(urls)
            env["PUSH_RABBITMQ_URLS"] = ",".join(urls[first:] + urls[:first])
        return env

    def programs(self) -> list[Program]:
        """What runs, in the order it starts: a worker process more is one entry."""
        api = [
            Program(
                f"api-{port}",
                f"push_api on 127.0.0.1:{port}",
                (
                    str(VENV_BIN / "gunicorn"),
                    "-c",
                    str(ROOT / "push_api" / "gunicorn_conf.py"),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "push_api.wsgi:app",
                ),
                Answers(f"http://127.0.0.1:{port}/healthz"),
                env={"PUSH_INSTANCE_NAME": f"api-{port}"},
                # a quick stop: a graceful one waits out idle keep-alive connections
                # and long polls; what a sync held goes back to the queue anyway
                stop_signal="INT",
            )
            for port in self.api_ports
        ]
        workers = [
            # each says "consuming" once its queues exist
            Program(
                "dispatcher",
                "dispatcher worker",
                (str(VENV_BIN / "python"), "-m", "dispatcher"),
                Says("consuming"),
            ),
            Program(
                "wakes",
                "wake worker (FCM, APNs)",
                (str(VENV_BIN / "python"), "-m", "dispatcher.platforms"),
                Says("consuming"),
            ),
            Program(
                "campaigns",
                "campaign worker (RQ jobs on Redis)",
                (str(VENV_BIN / "python"), "-m", "dispatcher.campaigns"),
                Says("consuming"),
            ),
        ]
        nginx = Program(
            "nginx",
            f"nginx on 127.0.0.1:{self.nginx_port}",
            (
                nginx_binary(),
                "-c",
                str(self._nginx_conf()),
                "-p",
                str(self.run_dir),
                "-g",
                "daemon off;",
            ),
            Answers(f"{self.base_url}/healthz", any_certificate=self.tls is not None),
            log="nginx-error.log",  # also its error_log: what it says before reading that
            ready_within_s=60,
        )
        pushbox = [*api, *(workers if self.with_dispatcher else [])]
        for i, p in enumerate(pushbox):
            p.env.update(self.broker_env(i))
        return [*pushbox, nginx]

    # ---- nginx's own configuration
    def _nginx_conf(self) -> Path:
        return self.run_dir / "nginx.conf"

    def _write_nginx_conf(self) -> bool:
        """Renders nginx/pushbox.conf.template; True when that changed the file."""
        tmp = self.run_dir / "nginx-tmp"
        tmp.mkdir(exist_ok=True)
        user_line = ""
        if os.geteuid() == 0:  # workers drop to nobody; let them use the temp dirs
            user_line = "user nobody nogroup;"
            for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
                (tmp / sub).mkdir(exist_ok=True)
                shutil.chown(tmp / sub, "nobody", "nogroup")
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in self.api_ports)
        files, connections = nginx_files()
        text = (ROOT / "nginx" / "pushbox.conf.template").read_text()
        for key, value in {
            "SERVERS": self._nginx_servers(),
            "RUN_DIR": str(self.run_dir),
            "NGINX_DIR": str(ROOT / "nginx"),
            "NGINX_PORT": str(self.nginx_port),
            "TLS_PORT": str(self.tls_port),
            "UPSTREAM_SERVERS": servers,
            "USER_LINE": user_line,
            "NGINX_FILES": str(files),
            "NGINX_CONNECTIONS": str(connections),
        }.items():
            text = text.replace(f"@{key}@", value)
        conf = self._nginx_conf()
        if conf.exists() and conf.read_text() == text:
            return False
        conf.write_text(text)
        return True

    def _nginx_servers(self) -> str:
        """The server blocks: plain HTTP; or HTTPS (HTTP/2) with plain HTTP redirecting."""
        name = "pushbox-servers-tls.conf" if self.tls else "pushbox-servers.conf"
        text = (ROOT / "nginx" / name).read_text()
        cert, key = self.tls or ("", "")
        for variable, value in {
            "LISTEN": f"127.0.0.1:{self.nginx_port} reuseport",  # spread over the workers
            "LISTEN_TLS": f"127.0.0.1:{self.tls_port} reuseport",
            "TLS_CERT": cert,
            "TLS_KEY": key,
        }.items():
            text = text.replace(f"@{variable}@", value)
        return text

    # ---- whole stack
    def up(self) -> list[str]:
        """Start what does not run and wait until everything answers; returns what it
        started, or found dead and waited for (empty when all was running)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        files = raise_open_files()  # the API workers inherit it: a socket per waiting sync
        subprocess.run(
            [str(VENV_BIN / "python"), "-m", "pushbox_core.schema"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        programs = self.programs()
        sup = self.supervisor
        nginx_changed = self._write_nginx_conf()
        sup.write_conf(programs, minfds=files)
        if sup.running():
            fresh = sup.reread()
            if nginx_changed and "nginx" not in fresh:
                sup.stop_program("nginx")  # started again below, on the new file
                fresh.add("nginx")
        else:
            sup.end_orphans()
            self._end_pid_file_stack()
            # nothing of the stack runs: no value of an earlier run may count in this one
            fresh_dir(self.metrics_dir)
            sup.start({**self.env, MULTIPROC_ENV: str(self.metrics_dir)})
            fresh = {p.name for p in programs}
        started = [note for p in programs if (note := self._ensure_started(p, fresh))]
        for p in programs:
            self._wait_ready(p)
        return started

    def _ensure_started(self, p: Program, fresh: set[str]) -> str | None:
        info = self.supervisor.info(p.name)
        state = info["statename"]
        if state not in RUNNING_STATES:  # stopped, exited, or FATAL (gave up)
            self.supervisor.start_program(p.name)
            return p.title
        if p.name in fresh:
            return p.title
        if state == "RUNNING" and alive(info["pid"]):
            return None
        # died: supervisord is starting it again, or is about to (it has not yet
        # reaped what it still calls RUNNING)
        return f"{p.title} (it had died; restarted by supervisord)"

    def _wait_ready(self, p: Program) -> None:
        """Until supervisord calls `p` RUNNING (up for STARTSECS) and it answers."""
        log = self.run_dir / p.log_name
        deadline = time.monotonic() + p.ready_within_s
        while True:
            info = self.supervisor.info(p.name)
            if info["statename"] == "FATAL":
                break
            pid = info["pid"]
            if info["statename"] == "RUNNING" and alive(pid) and p.ready.check(log, pid):
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"{p.title} did not start ({info['statename']}); {log}:\n{tail}")

    def down(self) -> list[str]:
        """Stop what this run directory's supervisord runs, then supervisord."""
        sup = self.supervisor
        if sup.running():
            return sup.shut_down()
        left = sup.end_orphans()
        ended = [f"{left} processes of a supervisord that had died"] if left else []
        return ended + self._end_pid_file_stack()

    def _end_pid_file_stack(self) -> list[str]:
        """Stop what an earlier scripts/stack.py started without supervisord (it wrote
        pid files here: api-<port>.pid, dispatcher.pid, nginx.pid): it would hold the
        ports. For checkouts that ran it; with supervisord running nothing is left.
        Each led its own process group: TERM to the group, KILL what stays."""
        groups: dict[int, str] = {}
        for pidfile in sorted(self.run_dir.glob("*.pid")):
            if pidfile == self.supervisor.pidfile:
                continue
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            cmd, p = cmdline(pid), proc(pid)
            if p and alive(pid) and (str(self.run_dir) in cmd or cmd.endswith("-m dispatcher")):
                groups[p.pgrp] = pidfile.stem
            pidfile.unlink()
        for pgrp in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgrp, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        members = [p.pid for p in processes() if p.pgrp in groups and p.state != "Z"]
        while any(alive(pid) for pid in members) and time.monotonic() < deadline:
            time.sleep(0.1)
        end(members)
        return [f"{name} (started before supervision)" for name in groups.values()]


def local_env(run_dir: Path) -> dict[str, str]:
    """The environment of `make up`: the caller's, plus, when they are unset, an admin
    token and the key that seals private keys (PUSH_SECRETS_KEY), each made once and
    kept in a file only its owner can read."""
    env = dict(os.environ)
    made = {
        "PUSH_ADMIN_TOKEN": ("admin-token", lambda: "adm_" + secrets.token_urlsafe(32)),
        "PUSH_SECRETS_KEY": (
            "secrets-key",
            lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        ),  # a Fernet key
    }
    for variable, (name, make) in made.items():
        if not env.get(variable):
            env[variable] = kept_secret(run_dir / name, make)
    return env


def kept_secret(path: Path, make) -> str:
    """The secret in `path`, made (readable by its owner only) when it is not there:
    written whole to a temporary file, then linked into place, so that a crash never
    leaves an empty secret and two `make up` at once agree on one."""
    if not path.exists() or not path.read_text().strip():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(make())
            f.flush()
            os.fsync(f.fileno())
        try:
            if path.exists():  # empty: a crash of an older make up
                path.unlink()
            os.link(tmp, path)  # fails if another make up made it meanwhile: theirs holds
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def main(argv: list[str]) -> int:
    run_dir = ROOT / ".run"
    command = argv[0] if argv else "status"
    stack = Stack(
        run_dir,
        local_env(run_dir) if command == "up" else dict(os.environ),
        nginx_port=int(os.environ.get("PUSH_NGINX_PORT", "8080")),
        api_ports=tuple(int(p) for p in os.environ.get("PUSH_API_PORTS", "8081,8082").split(",")),
        tls_port=int(os.environ.get("PUSH_NGINX_TLS_PORT", "8443")),
    )
    ctl = f".venv/bin/supervisorctl -c {stack.supervisor.conf.relative_to(ROOT)}"
    if command == "up":
        settings = Settings.from_env()
        for line in ensure_persistence(settings.redis_url):
            print(line)
        started = stack.up()
        base = stack.base_url
        if started:
            print("started: " + "; ".join(started))
        else:
            print("already running: nothing to do")
        token = stack.env["PUSH_ADMIN_TOKEN"]
        print(f"""
Pushbox is up at {base}  (API docs: {base}/docs, logs: {run_dir})
Admin token (also in {run_dir / "admin-token"} unless PUSH_ADMIN_TOKEN is set):
  {token}
Create an app:
  curl -s -X POST {base}/v1/apps -H 'Authorization: Bearer {token}' \\
       -H 'Content-Type: application/json' -d '{{"name": "my app"}}'
Console: {base}/console (log in with the admin token); metrics: {base}/metrics
supervisord restarts whatever dies. See it: make status (or {ctl} ...)
Stop it with: make down""")
        return 0
    if command == "down":
        stopped = stack.down()
        print("stopped: " + ", ".join(stopped) if stopped else "nothing was running")
        return 0
    if command == "status":
        if not stack.supervisor.running():
            left = stack.supervisor.orphans()
            print(f"supervisord is not running (for {run_dir})")
            if left:
                print(f"but {len(left)} processes it started still run, unsupervised:")
                print("make up replaces them, make down stops them")
            return 0
        shown = subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "-c", str(stack.supervisor.conf), "status"],
            check=False,
        )
        print(f"\nlogs: {run_dir}/<name>.log (nginx: nginx-error.log); more: {ctl} help")
        return 0 if shown.returncode in (0, 3) else shown.returncode  # 3: one is not running
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
