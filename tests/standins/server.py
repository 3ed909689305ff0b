"""What both stand-ins share: an ASGI app served by hypercorn over TLS in a background
thread, a record of every request, failures to inject, and a small control API
(`/_standin/...`) for a stand-in running in another process."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from tests.standins.tls import LocalCA

ANY_TOKEN = "*"
SSL_SHUTDOWN_TIMEOUT_S = 0.1
CONTROL = "/_standin/"
KEEP_ALIVE_MAX_REQUESTS = 10**9


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower case; a repeated header keeps its last value
    body: bytes
    http_version: str
    at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body)

    def wire(self) -> dict:
        d = asdict(self)
        d["body"] = self.body.decode("utf-8", errors="replace")
        return d


@dataclass
class Failure:
    status: int
    reason: str
    retry_after: str | None = None
    times: int | None = 1  # None: every request from now on
    extra: dict = field(default_factory=dict)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: object, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(value).encode(),
            {"content-type": "application/json; charset=utf-8", **(headers or {})},
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Standin:
    """Subclasses implement `handle(request) -> Response`."""

    name = "standin"
    h2_only = False

    def __init__(self, ca: LocalCA, *, host: str = "127.0.0.1", port: int = 0):
        self.ca = ca
        self.host = host
        self.port = port or free_port(host)
        self.url = f"https://{host}:{self.port}"
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._statuses: collections.Counter[int] = collections.Counter()
        self._failures: dict[str, list[Failure]] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    # ---- what a test reads and sets --------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def fail(
        self,
        token: str,
        status: int,
        reason: str,
        *,
        retry_after: float | str | None = None,
        times: int | None = 1,
        **extra: Any,
    ) -> None:
        """The next `times` requests for `token` (ANY_TOKEN: any token; times None:
        every one) are answered `status` with the platform's error `reason`."""
        ra = None if retry_after is None else str(retry_after)
        with self._lock:
            self._failures.setdefault(token, []).append(
                Failure(status, reason, ra, times, dict(extra))
            )

    def summary(self) -> dict:
        """How many requests came (control requests aside), when the first and the last
        arrived (epoch seconds), and the statuses answered: what a benchmark polls
        instead of fetching every request."""
        with self._lock:
            received = self._received
            return {
                "requests": len(received),
                "first_at": received[0].at if received else None,
                "last_at": received[-1].at if received else None,
                "statuses": {str(k): v for k, v in sorted(self._statuses.items())},
            }

    def _forget(self) -> None:
        with self._lock:
            self._received.clear()
            self._statuses.clear()
            self._failures.clear()

    def reset(self) -> None:
        """Forget requests and failures; start again if stopped."""
        self._forget()
        if not self.running:
            self.start()

    def _take_failure(self, token: str) -> Failure | None:
        with self._lock:
            for key in (token, ANY_TOKEN):
                queue = self._failures.get(key)
                if not queue:
                    continue
                failure = queue[0]
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        queue.pop(0)
                return failure
        return None

    def _record(self, request: Received) -> None:
        with self._lock:
            self._received.append(request)

    # ---- running -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"{self.name}-standin", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or not self.running:
                    raise RuntimeError(
                        f"{self.name} stand-in did not start on {self.url}"
                    ) from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Down: the port refuses connections until `start()` (or `reset()`)."""
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(10)
            if thread.is_alive():
                raise RuntimeError(f"{self.name} stand-in did not stop")
        self._thread = None

    def __enter__(self) -> Standin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _config(self) -> Config:
        config = Config()
        config.bind = [f"{self.host}:{self.port}"]
        config.certfile = self.ca.server_pem
        config.keyfile = self.ca.server_pem
        config.alpn_protocols = ["h2"] if self.h2_only else ["h2", "http/1.1"]
        config.graceful_timeout = 0.2
        # hypercorn closes a connection after 1,000 requests by default, cutting the
        # streams in flight on it; Google and Apple keep theirs for hours
        config.keep_alive_max_requests = KEEP_ALIVE_MAX_REQUESTS
        config.accesslog = None
        config.loglevel = "WARNING"
        return config

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        # Down means down: a TLS connection is dropped at once, not after asyncio's 30 s
        # wait for an idle client's close_notify. This loop is the stand-in's own.
        loop.create_server = functools.partial(  # type: ignore[method-assign]
            loop.create_server, ssl_shutdown_timeout=SSL_SHUTDOWN_TIMEOUT_S
        )
        self._loop = loop
        self._stop = stop = asyncio.Event()

        def quiet_when_going_down(loop: asyncio.AbstractEventLoop, context: dict) -> None:
            if not stop.is_set():
                loop.default_exception_handler(context)

        loop.set_exception_handler(quiet_when_going_down)
        ready.set()
        try:
            loop.run_until_complete(serve(self, self._config(), shutdown_trigger=self._stop.wait))  # type: ignore[arg-type]
        except Exception:  # connections cut short while going down: expected
            if not self._stop.is_set():
                raise
        finally:
            loop.close()

    # ---- ASGI --------------------------------------------------------------------

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        request = Received(
            method=scope["method"],
            path=scope["path"],
            headers=headers,
            body=body,
            http_version=scope.get("http_version", ""),
        )
        if request.path.startswith(CONTROL):
            response = self._control(request)
        else:
            self._record(request)
            try:
                response = self.handle(request)
            except Exception as e:  # a stand-in bug: say so, as a 500 with the reason
                response = Response.json(500, {"standin_error": repr(e)})
            with self._lock:
                self._statuses[response.status] += 1
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    def handle(self, request: Received) -> Response:
        raise NotImplementedError

    def _control(self, request: Received) -> Response:
        """GET requests: what was received. GET summary: how many, when, answered
        what. POST fail {token, status, reason, retry_after?, times?, ...}. POST reset."""
        what = request.path[len(CONTROL) :]
        if what == "requests" and request.method == "GET":
            return Response.json(200, [r.wire() for r in self.received])
        if what == "summary" and request.method == "GET":
            return Response.json(200, self.summary())
        if what == "fail" and request.method == "POST":
            spec = request.json()
            self.fail(spec.pop("token"), int(spec.pop("status")), spec.pop("reason"), **spec)
            return Response.json(200, {})
        if what == "reset" and request.method == "POST":
            self._forget()
            return Response.json(200, {})
        return Response.json(404, {"error": "no such control"})


__all__ = ["ANY_TOKEN", "Failure", "LocalCA", "Received", "Response", "Standin", "free_port"]
