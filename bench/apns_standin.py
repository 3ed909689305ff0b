"""The APNs stand-in (tests/standins) for the figures that wake devices: run as a
process of its own (its CPU is not the benchmark's, and is counted apart), where the
stack's wake worker expects it.

Where: the stack reads PUSH_APNS_URL and PUSH_CA_FILE when it starts, so the bench
reads them from the wake worker's own environment (/proc) and starts the stand-in on
that port, writing its CA to that file. `make bench` restarts the stack with
PUSH_APNS_URL=https://127.0.0.1:$(BENCH_APNS_PORT) and PUSH_CA_FILE=.run/bench-apns/ca.pem.
A stand-in makes a new CA and a new APNs key each time it starts: the bench uploads
the new key to its app (`PUT /v1/app/credentials/apns`), and new credentials make the
worker build a new client for the app, which reads the CA file then."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import requests

from bench import harness
from dispatcher.platforms.transport import ssl_context

START_LIMIT_S = 30
CONTROL_TIMEOUT_S = 10
LOCAL_HOSTS = ("127.0.0.1", "localhost")


class StepFailed(Exception):
    """A step of a benchmark that did not finish (in time): the figure is not measured."""


def expected() -> tuple[str, str]:
    """(url, CA file) the stack's wake worker was started with; StepFailed saying how to
    start the stack when they are not a local stand-in's."""
    env = harness.program_env("wakes")
    if env is None:
        raise StepFailed("the stack's wake worker (supervisord program wakes) does not run")
    url, ca_file = env.get("PUSH_APNS_URL", ""), env.get("PUSH_CA_FILE", "")
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.hostname not in LOCAL_HOSTS or not parts.port:
        how = "PUSH_APNS_URL=https://127.0.0.1:<port> PUSH_CA_FILE=<dir>/ca.pem"
        raise StepFailed(
            f"the stack's wake worker sends to APNs at {url or 'its default (Apple)'}:"
            f" restart the stack with {how} (make bench does; bench/README.md)"
        )
    if not ca_file:
        raise StepFailed("the stack's wake worker has no PUSH_CA_FILE to trust the stand-in by")
    return url.rstrip("/"), ca_file


class ApnsStandin:
    """A running stand-in process: its url, credentials and control endpoints."""

    def __init__(self, proc: subprocess.Popen, info: dict, ca_file: str):
        self.proc = proc
        self.info = info
        self.url = str(info["url"])
        self.ca_file = ca_file
        self.private_key = Path(info["private_key_file"]).read_text()
        # HTTP/2 only, like APNs; one thread uses it (BASELINE.md, "Traps")
        self._control = httpx.Client(
            http2=True, verify=ssl_context(ca_file), trust_env=False, timeout=CONTROL_TIMEOUT_S
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_part(self) -> dict[str, list[int]]:
        """For harness.CpuMeter(extra=...)."""
        return {"apns stand-in": [self.pid]}

    def credentials(self) -> dict:
        """The body of PUT /v1/app/credentials/apns."""
        fields = ("team_id", "key_id", "bundle_id")
        return {
            **{k: self.info[k] for k in fields},
            "private_key": self.private_key,
            "environment": "production",  # PUSH_APNS_URL
        }

    def upload_credentials(self, server_key: str) -> None:
        r = requests.put(
            harness.base_url() + "/v1/app/credentials/apns",
            json=self.credentials(),
            headers={"Authorization": f"Bearer {server_key}"},
            timeout=10,
        )
        if r.status_code != 200:
            raise StepFailed(f"uploading APNs credentials answered {r.status_code}: {r.text}")

    def reset(self) -> None:
        self._post("reset")

    def summary(self) -> dict:
        """requests, first_at, last_at (epoch seconds), statuses {status: count}."""
        try:
            r = self._control.get(self.url + "/_standin/summary")
        except httpx.HTTPError as e:
            raise StepFailed(f"the APNs stand-in did not answer: {e!r}") from None
        r.raise_for_status()
        return r.json()

    def wait_for(self, n: int, limit_s: float, *, poll_s: float = 0.05) -> dict:
        """The summary once n requests came; StepFailed after limit_s."""
        deadline = time.monotonic() + limit_s
        while True:
            summary = self.summary()
            if summary["requests"] >= n:
                return summary
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"the APNs stand-in got {summary['requests']} of {n} pushes in {limit_s:g} s"
                    f" (answered: {summary['statuses']})"
                )
            time.sleep(poll_s)

    def _post(self, what: str) -> None:
        try:
            self._control.post(f"{self.url}/_standin/{what}").raise_for_status()
        except httpx.HTTPError as e:
            raise StepFailed(f"the APNs stand-in's {what} failed: {e!r}") from None

    def stop(self) -> None:
        """TERM by its pid (it stops its server), KILL if it is still there after 10 s."""
        self._control.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start(url: str, ca_file: str) -> ApnsStandin:
    """The stand-in on url's port, its CA written to ca_file (StepFailed if it does not
    come up within START_LIMIT_S)."""
    port = urlsplit(url).port
    directory = Path(ca_file).parent
    directory.mkdir(parents=True, exist_ok=True)
    log = open(directory / "standin.log", "ab")  # noqa: SIM115 - the process writes it
    argv = [sys.executable, "-m", "tests.standins", "apns", "--port", str(port)]
    if os.environ.get("PUSH_BENCH_STANDIN_VERIFY_EVERY_TOKEN"):
        argv.append("--verify-every-token")  # how the stand-in alone was measured
    proc = subprocess.Popen(
        [*argv, "--dir", str(directory)],
        cwd=harness.ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    log.close()
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_LIMIT_S)
    line = proc.stdout.readline() if ready else b""
    if not line:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        tail = (directory / "standin.log").read_text(errors="replace")[-1500:]
        raise StepFailed(f"the APNs stand-in did not start on port {port}: {tail}")
    info = json.loads(line)
    if Path(info["ca_file"]) != Path(ca_file):
        shutil.copyfile(info["ca_file"], ca_file)
    return ApnsStandin(proc, info, ca_file)


@contextlib.contextmanager
def running() -> Iterator[ApnsStandin]:
    """A stand-in where the stack's wake worker expects one, stopped after."""
    url, ca_file = expected()
    standin = start(url, ca_file)
    try:
        yield standin
    finally:
        standin.stop()
