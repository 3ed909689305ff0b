"""A RabbitMQ cluster owned by the project, beside (never instead of) the machine's
own broker: `make cluster-up` / `make cluster-down` use it, and so do the tests, with
their own names, ports and folder.

    python -m scripts.cluster up|down|status [--nodes N]

Each node is a RabbitMQ server of this machine's installation started with settings
of its own, so nothing it does can reach the machine's broker (rabbit@localhost on
:5672, with its data in /var/lib/rabbitmq):
- its own node name (`pushbox-1@localhost`, ...), AMQP port (127.0.0.1:5701, ...) and
  Erlang distribution port (25701, ...), both on loopback only;
- its own data, logs, configuration, plugins file and pid file under the run folder
  (`.run/cluster/<node>/`), and an environment file of its own (the machine's
  /etc/rabbitmq/rabbitmq-env.conf names the machine's node);
- its own Erlang cookie, in a HOME of its own (`.run/cluster/home`): the machine's
  cookie (/var/lib/rabbitmq/.erlang.cookie) is never read or written. Only epmd, the
  Erlang name server on :4369, is shared: it only maps names to ports.
- a memory high watermark that leaves room for the others (MEMORY_SHARE), and the
  open-files limit a broadcast to 10,000 devices needs: the hard limit of the shell
  that starts it (20,000 here), where the machine's broker got 1,024 from `su`.
  As root the nodes run as user rabbitmq (its files there are owned by it), started
  through setpriv, which keeps that limit, not through su, whose PAM session resets it.

`up` starts what does not run, joins a node that is new to the cluster, waits until
every node is running in one cluster (polling: `rabbitmqctl await_startup` fails until
a fresh node has registered with epmd), moves quorum queue leaders back onto a node
that rejoined, and prints the settings a stack needs. Run again, it changes nothing.
`down` stops the nodes it started, by the pid each wrote (checked against the node's
own environment first, so a reused pid is never signalled), and keeps their data: `up`
brings the same cluster, queues and messages back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.launcher import alive

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NODES = 3
FIRST_AMQP_PORT = 5701
DIST_PORT_OFFSET = 20_000  # RabbitMQ's own convention: 5672 -> 25672
# each node's memory high watermark, as a share of the machine's memory: the cluster as
# a whole gets what one node gets by default (0.4), so it fits beside the machine's
# broker; a quorum queue has a member, and its memory, on every node (docs/capacity.md)
MEMORY_SHARE = 0.4
WAL_MAX_BYTES = 64 << 20  # the Raft WAL kept in memory before it is written out (512 MiB)
START_WAIT_S = 180.0  # a node waits for its peers' tables for up to 5 min; the cluster,
STOP_WAIT_S = 60.0  # started together, needs far less
NODE_USER = "rabbitmq"
COOKIE_FILE = ".erlang.cookie"


def rabbitmq_scripts() -> Path:
    """Where RabbitMQ's own scripts are: Debian's /usr/sbin wrappers `su` to user
    rabbitmq, into its home, and so its cookie: the machine's node, not ours."""
    for candidate in (Path("/usr/lib/rabbitmq/bin"), Path("/usr/local/lib/rabbitmq/bin")):
        if (candidate / "rabbitmq-server").exists():
            return candidate
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise SystemExit("RabbitMQ is not installed: run `make install` (as root) first")
    return Path(found).resolve().parent


@dataclass(frozen=True)
class Node:
    name: str  # pushbox-1
    amqp_port: int
    dist_port: int
    folder: Path

    @property
    def nodename(self) -> str:
        return f"{self.name}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def pid_file(self) -> Path:
        return self.folder / "pid"

    @property
    def log(self) -> Path:
        """What the node writes to its console (boot failures land here)."""
        return self.folder / "console.log"

    @property
    def config(self) -> Path:
        return self.folder / "rabbitmq.conf"


@dataclass
class Cluster:
    """Nodes named `<prefix>-1..N@localhost` on consecutive ports from `first_port`,
    their files under `folder`."""

    folder: Path
    prefix: str = "pushbox"
    size: int = DEFAULT_NODES
    first_port: int = FIRST_AMQP_PORT
    amqp_ports: Sequence[int] = ()  # default: consecutive from first_port
    dist_ports: Sequence[int] = ()  # default: each AMQP port + DIST_PORT_OFFSET
    memory_share: float = MEMORY_SHARE  # of the machine's memory, for all nodes together
    said: list[str] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        amqp = list(self.amqp_ports) or [self.first_port + i for i in range(self.size)]
        dist = list(self.dist_ports) or [port + DIST_PORT_OFFSET for port in amqp]
        return [
            Node(f"{self.prefix}-{i + 1}", amqp[i], dist[i], self.folder / f"{self.prefix}-{i + 1}")
            for i in range(self.size)
        ]

    @property
    def home(self) -> Path:
        """HOME of the nodes and of every rabbitmqctl call made for them: the cookie."""
        return self.folder / "home"

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def node(self, name_or_index: str | int) -> Node:
        if isinstance(name_or_index, int):
            return self.nodes[name_or_index]
        return next(n for n in self.nodes if name_or_index in (n.name, n.nodename))

    # ---- who runs the nodes
    @staticmethod
    def _user() -> pwd.struct_passwd | None:
        """The account the nodes run as: rabbitmq when we are root (never root itself),
        else whoever we are (None)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(NODE_USER)
        except KeyError:
            return None

    def _own(self, path: Path) -> None:
        user = self._user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    # ---- files
    def _prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)  # the nodes' user must reach its own folder below
        for parent in self.folder.parents:  # and every folder above it
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            if self._user() is not None and not mode & 0o001:
                raise SystemExit(f"{parent} is not searchable by {NODE_USER}: chmod o+x it")
        self.home.mkdir(exist_ok=True)
        self.home.chmod(0o700)
        cookie = self.home / COOKIE_FILE
        if not cookie.exists():
            fd = os.open(cookie, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(20).upper())
        self._own(self.home)
        self._own(cookie)
        for node in self.nodes:
            node.folder.mkdir(exist_ok=True)
            for sub in ("mnesia", "log"):
                (node.folder / sub).mkdir(exist_ok=True)
                self._own(node.folder / sub)
            self._own(node.folder)
            # pause_minority: a node cut off from the majority stops serving rather than
            # taking messages its queues cannot replicate; 1 or 2 nodes have no majority
            # to keep when one goes, so they ignore partitions
            partitions = "pause_minority" if self.size >= 3 else "ignore"
            node.config.write_text(
                f"""# written by scripts/cluster.py at each `up`: edits here are lost
listeners.tcp.1 = 127.0.0.1:{node.amqp_port}
vm_memory_high_watermark.relative = {self.memory_share / self.size:.3f}
disk_free_limit.absolute = 1000000000
queue_leader_locator = balanced
raft.wal_max_size_bytes = {WAL_MAX_BYTES}
cluster_partition_handling = {partitions}
log.console = true
log.console.level = warning
log.file.level = info
"""
            )
            (node.folder / "enabled_plugins").write_text("[].\n")
            (node.folder / "rabbitmq-env.conf").write_text(
                "# the nodes' own: /etc/rabbitmq/rabbitmq-env.conf names the machine's node\n"
            )

    def _node_env(self, node: Node) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_")) and k not in ("HOME", "CONF_ENV_FILE")
        }
        env.update(
            HOME=str(self.home),
            RABBITMQ_NODENAME=node.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(node.amqp_port),
            RABBITMQ_DIST_PORT=str(node.dist_port),
            RABBITMQ_CONF_ENV_FILE=str(node.folder / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(node.config),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(node.folder / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(node.folder / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(node.folder / "mnesia"),
            RABBITMQ_LOG_BASE=str(node.folder / "log"),
            RABBITMQ_PID_FILE=str(node.pid_file),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS="127.0.0.1",  # if a node has to start epmd: loopback only
        )
        return env

    def ctl_env(self) -> dict[str, str]:
        """The environment of a CLI call to these nodes: their cookie, and any free
        distribution port for the CLI itself (its default range, 35672-35682, is
        shared with every other rabbitmqctl running on the machine)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.home),
            RABBITMQ_CONF_ENV_FILE=str(self.folder / "no-env-file"),
            RABBITMQ_CTL_DIST_PORT_MIN="0",
            RABBITMQ_CTL_DIST_PORT_MAX="0",
        )
        return env

    # ---- one node
    def pid(self, node: Node) -> int | None:
        """The running node's OS pid, from the pid file it wrote, once /proc confirms
        the process is this node (its environment names it); else None."""
        try:
            pid = int(node.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not alive(pid):
            return None
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if f"RABBITMQ_NODENAME={node.nodename}".encode() in environ else None

    def start(self, node: Node) -> subprocess.Popen:
        """Start the node in the background (its own session: a terminal's ^C does not
        reach it) and return at once; `wait_running` waits for it."""
        user = self._user()
        argv = [str(rabbitmq_scripts() / "rabbitmq-server")]
        if user is not None:
            argv = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--init-groups",
                "--",
                *argv,
            ]
        with open(node.log, "ab") as out:
            if user is not None:
                os.chown(node.log, user.pw_uid, user.pw_gid)
            out.write(f"\n--- scripts/cluster.py starts {node.nodename}\n".encode())
            out.flush()
            return subprocess.Popen(
                argv,
                env=self._node_env(node),
                cwd=node.folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_files_to_hard_limit,
            )

    def kill(self, node: Node, sig: int = signal.SIGKILL) -> int:
        """Signal the node's process (by its pid); returns the pid."""
        pid = self.pid(node)
        if pid is None:
            raise RuntimeError(f"{node.nodename} is not running")
        os.kill(pid, sig)
        return pid

    def stop(self, nodes: Iterable[Node]) -> list[Node]:
        """Stop these nodes together (SIGTERM: RabbitMQ shuts down cleanly on it),
        SIGKILL what still runs after STOP_WAIT_S; returns those that were running."""
        running = {n.name: (n, pid) for n in nodes if (pid := self.pid(n)) is not None}
        for _, pid in running.values():
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while any(alive(pid) for _, pid in running.values()):
            if time.monotonic() > deadline:
                for _, pid in running.values():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        return [n for n, _ in running.values()]

    def answers(self, node: Node) -> bool:
        """Its AMQP port accepts connections (the node has booted)."""
        try:
            socket.create_connection(("127.0.0.1", node.amqp_port), timeout=1).close()
            return True
        except OSError:
            return False

    def ctl(
        self, node: Node, *args: str, tool: str = "rabbitmqctl", timeout: float = 120
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(rabbitmq_scripts() / tool), "-n", node.nodename, *args],
            env=self.ctl_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def members(self, node: Node) -> tuple[set[str], set[str]] | None:
        """(disk nodes, running nodes) as `node` sees them; None when it does not answer."""
        done = self.ctl(node, "cluster_status", "--formatter", "json", timeout=60)
        if done.returncode != 0:
            return None
        try:
            status = json.loads(done.stdout)
        except ValueError:
            return None
        return set(status.get("disk_nodes", [])), set(status.get("running_nodes", []))

    def wait_running(
        self, nodes: Iterable[Node], started: dict[str, subprocess.Popen] | None = None
    ) -> None:
        """Until each node's AMQP port answers and it says it has booted; a node that
        exits meanwhile fails at once, with the end of its log."""
        deadline = time.monotonic() + START_WAIT_S
        for node in nodes:
            while not self.answers(node):
                proc = (started or {}).get(node.name)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{node.nodename} exited at start:\n{self._tail(node)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node.nodename} did not start:\n{self._tail(node)}")
                time.sleep(0.25)
            while self.ctl(node, "await_startup", "--timeout", "60").returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node.nodename} did not boot:\n{self._tail(node)}")
                time.sleep(0.5)

    @staticmethod
    def _tail(node: Node) -> str:
        text = node.log.read_text(errors="replace") if node.log.exists() else ""
        return text[-3000:]

    # ---- the whole cluster
    def up(self) -> list[str]:
        """Start what does not run and make one cluster of every node; returns what it
        did (empty when everything was running and formed)."""
        self._prepare()
        did: list[str] = []
        down = [n for n in self.nodes if self.pid(n) is None]
        for node in down:
            if self.answers(node):
                raise RuntimeError(
                    f"127.0.0.1:{node.amqp_port} is taken by a process that is not "
                    f"{node.nodename}: choose other ports"
                )
        was_running = [n for n in self.nodes if n not in down]
        started = {n.name: self.start(n) for n in down}  # together: a node that was
        # clustered waits at boot for the peers it last saw, so they must come up too
        self.wait_running(down, started)
        did += [f"started {n.nodename} on 127.0.0.1:{n.amqp_port}" for n in down]
        did += self._form()
        if down and was_running and self.size > 1:
            # a node that rejoined leads nothing: its queues' leaders moved to the
            # others while it was away; spread them again
            self.ctl(self.nodes[0], "rebalance", "quorum", tool="rabbitmq-queues", timeout=600)
            did.append("spread quorum queue leaders over every node again")
        return did

    def _form(self) -> list[str]:
        """Join every node that is not a member to the first one, and wait until all
        of them run in one cluster."""
        did: list[str] = []
        seed, *others = self.nodes
        deadline = time.monotonic() + START_WAIT_S
        while True:
            seen = self.members(seed)
            if seen is None:
                raise RuntimeError(f"{seed.nodename} does not answer rabbitmqctl")
            disk, running = seen
            joiners = [n for n in others if n.nodename not in disk]
            for node in joiners:
                for step in (("stop_app",), ("join_cluster", seed.nodename), ("start_app",)):
                    done = self.ctl(node, *step)
                    if done.returncode != 0:
                        raise RuntimeError(
                            f"{node.nodename} {' '.join(step)} failed: {done.stdout}{done.stderr}"
                        )
                did.append(f"joined {node.nodename} to {seed.nodename}")
            if joiners:
                continue
            if {n.nodename for n in self.nodes} <= running:
                return did
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not form: running {sorted(running)}")
            time.sleep(1)

    def down(self) -> list[str]:
        """Stop the nodes this cluster's pid files name; the data stays (started again
        together, they wait for each other and come back as they were)."""
        return [f"stopped {n.nodename}" for n in self.stop(self.nodes)]

    def status(self) -> list[str]:
        lines = []
        for node in self.nodes:
            pid = self.pid(node)
            state = f"running, pid {pid}" if pid else "not running"
            lines.append(f"{node.nodename:24} 127.0.0.1:{node.amqp_port}  {state}")
        return lines

    def write_ctl(self) -> Path:
        """A rabbitmqctl for this cluster (its cookie; the first node that answers, or
        the one `-n` names): what PUSH_RABBITMQCTL points the reconciler and the bench
        at."""
        script = self.folder / "rabbitmqctl"
        env = self.ctl_env()
        exports = " ".join(
            f"{k}={_sh(env[k])}"
            for k in ("HOME", "RABBITMQ_CONF_ENV_FILE", "RABBITMQ_CTL_DIST_PORT_MIN")
        )
        nodes = " ".join(n.nodename for n in self.nodes)
        ctl = rabbitmq_scripts()
        script.write_text(
            f"""#!/bin/sh
# written by scripts/cluster.py: rabbitmqctl (or, as ${{PUSHBOX_CTL_TOOL}}, another
# RabbitMQ CLI tool) for the project's cluster, with its cookie. Without -n it asks
# the first node that answers.
export {exports} RABBITMQ_CTL_DIST_PORT_MAX=0
tool={ctl}/${{PUSHBOX_CTL_TOOL:-rabbitmqctl}}
for arg in "$@"; do
  case "$arg" in -n|--node|-n*|--node=*) exec "$tool" "$@";; esac
done
for node in {nodes}; do
  if "$tool" -n "$node" -q ping >/dev/null 2>&1; then exec "$tool" -n "$node" "$@"; fi
done
echo "no node of the cluster answers ({nodes})" >&2
exit 69
"""
        )
        script.chmod(0o700)
        return script

    def settings_text(self) -> str:
        queue_type = "quorum" if self.size >= 3 else "classic"
        return "\n".join(
            [
                f"export PUSH_RABBITMQ_URLS={','.join(self.urls)}",
                f"export PUSH_QUEUE_TYPE={queue_type}",
                f"export PUSH_RABBITMQCTL={self.folder / 'rabbitmqctl'}",
            ]
        )


def _sh(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _files_to_hard_limit() -> None:
    """In the child, before exec: as many open files as the hard limit allows (a
    broadcast writes to one file a device queue)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def local(size: int = DEFAULT_NODES) -> Cluster:
    """The cluster of `make cluster-up`: nodes pushbox-1.. on 127.0.0.1:5701..."""
    return Cluster(ROOT / ".run" / "cluster", size=size)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.cluster", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--nodes", type=int, default=None, help="how many nodes (default 3)")
    args = parser.parse_args(argv)
    size = args.nodes or int(os.environ.get("NODES") or 0) or _known_size() or DEFAULT_NODES
    cluster = local(size)
    if args.command == "up":
        if _known_size() not in (None, size):
            print(
                f"a cluster of {_known_size()} nodes was made here: `make cluster-down`,"
                f" then remove {cluster.folder} to make one of {size}",
                file=sys.stderr,
            )
            return 2
        started = time.monotonic()
        did = cluster.up()
        (cluster.folder / "size").write_text(f"{size}\n")
        ctl = cluster.write_ctl()
        took = time.monotonic() - started
        print("; ".join(did) + f" ({took:.0f} s)" if did else "already running: nothing to do")
        print("\n".join(["", *cluster.status(), ""]))
        print(f"""Run Pushbox on it (make up, make test's stack, the bench) with:
{cluster.settings_text()}
Its CLI: {ctl} cluster_status (data and logs: {cluster.folder})
Stop it with: make cluster-down (the data stays; `make cluster-up` brings it back)""")
        return 0
    if args.command == "down":
        stopped = cluster.down()
        print("; ".join(stopped) if stopped else "no node of the cluster was running")
        return 0
    print("\n".join(cluster.status()))
    return 0


def _known_size() -> int | None:
    try:
        return int((local().folder / "size").read_text().strip())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
