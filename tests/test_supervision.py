"""Every process of a stack is supervised: killed outright (SIGKILL, nothing to clean
up after itself), it is back within seconds with no one calling up(). up() right after
a kill reports nothing dead as running and starts no second copy; down() leaves no
process behind.

A stack of its own (run directory, ports, namespace), so that the session's `stack`
is not disturbed and the order-events queue's consumers are its dispatcher's alone.
Times are printed (pytest -s), never asserted: a deadline only says it came back."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from pushbox_core.names import Names
from pushbox_core.settings import Settings
from scripts.launcher import Proc, alive, cmdline, leftovers, processes
from scripts.stack import VENV_BIN, Stack, answers
from tests.conftest import forget_namespace, settings_env, stack_of_its_own
from tests.support import eventually

BACK_WITHIN_S = 30.0  # a deadline, not a measure: it takes a second or two here


@pytest.fixture(scope="module")
def own(settings: Settings) -> Settings:
    return replace(
        settings,
        namespace=f"{settings.namespace}sv",
        redis_prefix=f"{settings.redis_prefix}sv",
        orders_exchange=f"{settings.orders_exchange}sv",
    )


@pytest.fixture(scope="module")
def supervised(own: Settings) -> Iterator[Stack]:
    try:
        with stack_of_its_own(settings_env(own)) as st:
            yield st
    finally:
        forget_namespace(own)  # once its dispatcher is gone: it would declare again


@pytest.fixture
def running(supervised: Stack) -> Stack:
    supervised.up()
    return supervised


# ---- what the tests look at
def ctl_pid(st: Stack, name: str) -> int:
    """The pid supervisorctl gives for `name`; 0 while it does not run."""
    out = subprocess.run(
        [str(VENV_BIN / "supervisorctl"), "-c", str(st.supervisor.conf), "pid", name],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return int(out) if out.isdigit() else 0


def order_event_consumers(s: Settings) -> int:
    return queue_counts(s, Names(s.namespace, s.redis_prefix).order_events_queue)[1]


def queue_counts(s: Settings, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of `queue`; (0, 0) while it does not exist."""
    conn = pika.BlockingConnection(pika.URLParameters(s.rabbitmq_url))
    try:
        ok = conn.channel().queue_declare(queue, passive=True).method
        return ok.message_count, ok.consumer_count
    except ChannelClosedByBroker:
        return 0, 0
    finally:
        if conn.is_open:
            conn.close()


def supervisord_pid(st: Stack) -> int:
    return int(st.supervisor.pidfile.read_text())


def session(sid: int) -> list[Proc]:
    """The live processes of a stack, by its supervisord's pid: they are all of its
    session, every program and each of their children."""
    return [p for p in processes() if p.session == sid and p.state != "Z"]


def kill(pid: int) -> None:
    assert pid > 0 and alive(pid)
    os.kill(pid, signal.SIGKILL)


def back(st: Stack, name: str, killed: int, ready: Callable[[], bool]) -> None:
    """Seconds until `name` runs again under a new pid, nothing of the killed
    instance's process group lives on, and `ready()`; fails at the deadline."""
    start = time.monotonic()

    def is_back() -> bool:
        pid = ctl_pid(st, name)
        left = [p for p in processes() if p.pgrp == killed and p.state != "Z"]
        return pid not in (0, killed) and alive(pid) and not left and ready()

    assert eventually(is_back, BACK_WITHIN_S, every=0.05), f"{name} not back in time"
    print(f"{name}: back {time.monotonic() - start:.2f} s after kill -9")


def healthz(port: int) -> Callable[[], bool]:
    return lambda: answers(f"http://127.0.0.1:{port}/healthz")


# ---- kill -9, and nobody calls up()
def test_a_killed_api_master_is_back_within_seconds(running: Stack):
    port = running.api_ports[0]
    master = ctl_pid(running, f"api-{port}")
    assert [p for p in session(supervisord_pid(running)) if p.ppid == master], (
        "a worker to leave behind"
    )
    kill(master)
    back(running, f"api-{port}", master, healthz(port))


def test_a_killed_nginx_is_back_within_seconds(running: Stack):
    """Its workers outlive the master and keep the port: the next one ends them."""
    master = ctl_pid(running, "nginx")
    kill(master)
    back(running, "nginx", master, healthz(running.nginx_port))


def test_a_killed_dispatcher_consumes_order_events_again(running: Stack, own: Settings):
    assert order_event_consumers(own) == 1
    pid = ctl_pid(running, "dispatcher")
    kill(pid)
    back(running, "dispatcher", pid, lambda: order_event_consumers(own) == 1)
    # and it takes what arrives: a malformed event ends up with the invalid ones
    invalid = Names(own.namespace, own.redis_prefix).invalid_order_events
    before = queue_counts(own, invalid)[0]
    conn = pika.BlockingConnection(pika.URLParameters(own.rabbitmq_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(own.orders_exchange, "order.shipped", b"not json", mandatory=True)
    finally:
        conn.close()
    assert eventually(lambda: queue_counts(own, invalid)[0] == before + 1)


# ---- up() and down()
def test_up_twice_changes_nothing(running: Stack):
    pids = running.supervisor.pids()
    assert running.up() == []
    assert running.supervisor.pids() == pids


def test_up_right_after_kills_leaves_one_of_each_and_all_answering(running: Stack, own: Settings):
    port = running.api_ports[1]
    for name in (f"api-{port}", "dispatcher", "wakes", "nginx"):
        kill(ctl_pid(running, name))
    running.up()
    # answering as soon as up() returns: it does not call a dead process running
    for p in (*running.api_ports, running.nginx_port):
        assert healthz(p)(), p
    assert order_event_consumers(own) == 1
    sid = supervisord_pid(running)
    procs = session(sid)
    assert leftovers(sid) == []
    pids = {p.pid for p in procs}
    for p in running.api_ports:  # one gunicorn master a port: its workers' parent
        bound = [q for q in procs if f"--bind 127.0.0.1:{p} " in cmdline(q.pid) + " "]
        assert len([q for q in bound if q.ppid not in {b.pid for b in bound}]) == 1, p
    assert len([q for q in procs if cmdline(q.pid).startswith("nginx: master")]) == 1
    for worker in ("-m dispatcher", "-m dispatcher.platforms"):
        assert len([q for q in procs if cmdline(q.pid).endswith(worker)]) == 1, worker
    assert set(running.supervisor.pids().values()) <= pids


def test_up_after_supervisord_itself_was_killed_replaces_what_it_ran(running: Stack):
    """Its programs outlive it, unsupervised and holding their ports."""
    sid = supervisord_pid(running)
    kill(sid)
    assert eventually(lambda: not alive(sid)) and len(session(sid)) > 4
    started = running.up()
    assert len(started) == len(running.programs())
    assert session(sid) == []
    for p in (*running.api_ports, running.nginx_port):
        assert healthz(p)(), p


def test_down_leaves_no_process_of_its_run_dir(running: Stack):
    sid = supervisord_pid(running)
    assert len(session(sid)) > 4
    stopped = running.down()
    assert set(stopped) >= {"nginx", "dispatcher", "supervisord"}
    assert session(sid) == []
    assert not [p for p in processes() if str(running.run_dir) in cmdline(p.pid)]
    assert not running.supervisor.running()
    assert running.down() == []
