"""Starts and stops a Pushbox stack on this machine: two push_api instances (gunicorn),
the dispatcher worker and nginx in front. `make up` / `make down` use it, and so do the
tests, with their own ports, namespace and run directory.

    python -m scripts.stack up|down|status
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def alive(pid: int) -> bool:
    try:  # a child of ours that exited is a zombie until reaped: reap it
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def wait_http(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


NGINX_CONNECTIONS_MAX = 32_768  # two a waiting device (phone and upstream): 16,384 waiting
NGINX_FILES_MAX = 66_000  # a file a connection, with room to spare


def raise_open_files() -> None:
    """This process's soft open-files limit up to its hard one (Debian's soft default,
    1,024, would cap an API worker near 1,000 waiting syncs)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 20 if hard == resource.RLIM_INFINITY else hard  # no file limit is infinite
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def nginx_files() -> tuple[int, int]:
    """(worker_rlimit_nofile, worker_connections) for nginx: as many files as it can
    surely get, the hard limit it starts under (only CAP_SYS_RESOURCE goes past it),
    up to NGINX_FILES_MAX, and connections to match, with a thousand files spare."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    files = NGINX_FILES_MAX if hard == resource.RLIM_INFINITY else min(NGINX_FILES_MAX, hard)
    return files, max(1_024, min(NGINX_CONNECTIONS_MAX, files - 1_000))


@dataclass
class Stack:
    run_dir: Path
    env: dict[str, str]
    nginx_port: int = 8080
    api_ports: tuple[int, ...] = (8081, 8082)
    with_dispatcher: bool = True
    started: list[str] = field(default_factory=list)

    # ---- pieces
    def _api_pid(self, port: int) -> Path:
        return self.run_dir / f"api-{port}.pid"

    def _start_api(self, port: int) -> None:
        if read_pid(self._api_pid(port)):
            return
        env = {**self.env, "PUSH_INSTANCE_NAME": f"api-{port}"}
        subprocess.run(
            [
                str(VENV_BIN / "gunicorn"),
                "-c",
                str(ROOT / "push_api" / "gunicorn_conf.py"),
                "--bind",
                f"127.0.0.1:{port}",
                "--pid",
                str(self._api_pid(port)),
                "--error-logfile",
                str(self.run_dir / f"api-{port}.log"),
                "--daemon",
                "push_api.wsgi:app",
            ],
            cwd=ROOT,
            env=env,
            check=True,
        )
        if not wait_http(f"http://127.0.0.1:{port}/healthz", 30):
            raise RuntimeError(f"push_api on port {port} did not start: see {self.run_dir}")
        self.started.append(f"push_api on 127.0.0.1:{port}")

    def _dispatcher_pid(self) -> Path:
        return self.run_dir / "dispatcher.pid"

    def _start_dispatcher(self) -> None:
        if read_pid(self._dispatcher_pid()) or not (ROOT / "dispatcher" / "__main__.py").exists():
            return
        log_path = self.run_dir / "dispatcher.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [str(VENV_BIN / "python"), "-m", "dispatcher"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._dispatcher_pid().write_text(str(proc.pid))
        deadline = time.monotonic() + 30
        while b"consuming" not in log_path.read_bytes()[offset:]:  # said once its queues exist
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the dispatcher did not start:\n{tail}")
            time.sleep(0.1)
        self.started.append("dispatcher worker")

    def _nginx_conf(self) -> Path:
        return self.run_dir / "nginx.conf"

    def _start_nginx(self) -> None:
        if read_pid(self.run_dir / "nginx.pid"):
            return
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
            "RUN_DIR": str(self.run_dir),
            "NGINX_DIR": str(ROOT / "nginx"),
            "NGINX_PORT": str(self.nginx_port),
            "UPSTREAM_SERVERS": servers,
            "USER_LINE": user_line,
            "NGINX_FILES": str(files),
            "NGINX_CONNECTIONS": str(connections),
        }.items():
            text = text.replace(f"@{key}@", value)
        self._nginx_conf().write_text(text)
        subprocess.run(
            [nginx_binary(), "-q", "-c", str(self._nginx_conf()), "-p", str(self.run_dir)],
            check=True,
        )
        if not wait_http(f"http://127.0.0.1:{self.nginx_port}/healthz", 15):
            raise RuntimeError(f"nginx did not start: see {self.run_dir}/nginx-error.log")
        self.started.append(f"nginx on 127.0.0.1:{self.nginx_port}")

    # ---- whole stack
    def up(self) -> list[str]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        raise_open_files()  # the API workers inherit it: a socket per waiting sync
        subprocess.run(
            [str(VENV_BIN / "python"), "-m", "pushbox_core.schema"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        for port in self.api_ports:
            self._start_api(port)
        if self.with_dispatcher:
            self._start_dispatcher()
        self._start_nginx()
        return self.started

    def down(self) -> list[str]:
        stopped = []
        # gunicorn: SIGINT, a quick stop (a graceful one waits out idle keep-alive
        # connections and long polls; what a sync held goes back to the queue anyway)
        pidfiles = [
            (self.run_dir / "nginx.pid", signal.SIGTERM),
            (self._dispatcher_pid(), signal.SIGTERM),
        ]
        pidfiles += [(self._api_pid(p), signal.SIGINT) for p in self.api_ports]
        for pidfile, how in pidfiles:
            pid = read_pid(pidfile)
            if pid is None:
                continue
            os.kill(pid, how)
            for _ in range(100):
                if not alive(pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
            pidfile.unlink(missing_ok=True)
            stopped.append(pidfile.stem)

        return stopped


def local_env(run_dir: Path) -> dict[str, str]:
    """The environment of `make up`: the caller's, plus an admin token kept in a file
    only its owner can read when PUSH_ADMIN_TOKEN is unset."""
    env = dict(os.environ)
    if not env.get("PUSH_ADMIN_TOKEN"):
        token_file = run_dir / "admin-token"
        if not token_file.exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("adm_" + secrets.token_urlsafe(32))
        env["PUSH_ADMIN_TOKEN"] = token_file.read_text().strip()
    return env


def main(argv: list[str]) -> int:
    run_dir = ROOT / ".run"
    command = argv[0] if argv else "status"
    stack = Stack(
        run_dir,
        local_env(run_dir) if command == "up" else dict(os.environ),
        nginx_port=int(os.environ.get("PUSH_NGINX_PORT", "8080")),
        api_ports=tuple(int(p) for p in os.environ.get("PUSH_API_PORTS", "8081,8082").split(",")),
    )
    if command == "up":
        started = stack.up()
        base = f"http://127.0.0.1:{stack.nginx_port}"
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
Stop it with: make down""")
        return 0
    if command == "down":
        stopped = stack.down()
        print("stopped: " + ", ".join(stopped) if stopped else "nothing was running")
        return 0
    if command == "status":
        for pidfile in sorted(run_dir.glob("*.pid")):
            state = "running" if read_pid(pidfile) else "not running"
            print(f"{pidfile.stem}: {state}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
