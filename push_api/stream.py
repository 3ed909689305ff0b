"""`GET /v1/device/stream`: the live stream, a WebSocket (flask-sock on simple-websocket,
under gunicorn's gevent workers). What is checked before the upgrade answers in HTTP
(422 for a bad `window`, 401/403 for a bad token in the header); after it, in close
codes (DESIGN "Live stream"): 4000 bad frame, 4001 replaced, 4003 auth, 4004 device
deleted, 1011 a dependency is down. The streaming itself is dispatcher.delivery.stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading

from flask import Blueprint, g, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from wsproto.events import TextMessage
from wsproto.utilities import LocalProtocolError

from device_registry.sessions import Session
from dispatcher.delivery import stream
from dispatcher.delivery.mailbox import BROKEN, GONE
from push_api.auth import SESSION_TOKEN_PREFIX, device_of, require_device
from push_api.deps import deps
from pushbox_core.errors import (
    DeviceNotFound,
    InvalidRequest,
    PushboxError,
    RateLimited,
    Unauthorized,
)

log = logging.getLogger(__name__)

AUTH = 4003
TRY_AGAIN_LATER = 1013  # the device's rate limit (RFC 6455's "try again later")
AUTH_FRAME_WAIT_S = 5.0
PING_EVERY_S = 25  # keeps idle streams open through nginx and NATs
FRAME_MAX_BYTES = 256 * 1024  # an ack of 500 ids is ~20 KB

blp = Blueprint("stream", __name__)
sock = Sock()

# what simple-websocket's Server takes (flask-sock reads it from the app's config)
SERVER_OPTIONS = {"ping_interval": PING_EVERY_S, "max_message_size": FRAME_MAX_BYTES}


@blp.before_request
def before_upgrade() -> None:
    """What can be refused in HTTP, before the upgrade."""
    raw = request.args.get("window", str(stream.WINDOW_DEFAULT))
    if not raw.isdigit() or not 1 <= int(raw) <= stream.WINDOW_MAX:
        raise InvalidRequest(f"window must be 1 to {stream.WINDOW_MAX}", "window", "query")
    g.window = int(raw)
    # a token in the header is checked now; browsers send theirs in the first frame
    g.session = require_device() if request.headers.get("Authorization") else None


@sock.route("/v1/device/stream", bp=blp)
def device_stream(ws) -> None:
    socket = _Socket(ws)
    try:
        session = g.session or _first_frame_auth(socket)
    except (Unauthorized, stream.SocketClosed):
        socket.close(AUTH, "authentication failed: send {op: auth, token} first")
        return
    except RateLimited:
        socket.close(TRY_AGAIN_LATER, "too many requests from this device")
        return
    except PushboxError:  # a dependency is down
        socket.close(BROKEN, REASONS[BROKEN])
        return
    d = deps()
    try:
        code = stream.stream_device(
            session,
            g.window,
            socket,
            d=d.delivery,
            count=d.tally.for_device(session.app_id, session.device_id),  # acks: events too
            active=lambda: d.store.touch(session.device_id),
        )
    except DeviceNotFound:
        code = GONE
    except PushboxError as e:  # a dependency down, too
        log.warning("device %s: stream refused: %s", session.device_id, e)
        code = BROKEN
    socket.close(code, REASONS.get(code, ""))


REASONS = {
    stream.BAD_FRAME: "bad frame: send JSON {op: ack, ids: [...]}",
    stream.REPLACED: "replaced by a newer stream or sync of this device",
    GONE: "the device was deleted",
    BROKEN: "a dependency is down: reconnect shortly, nothing is lost",
}


def _first_frame_auth(socket: _Socket) -> Session:
    """{"op": "auth", "token": "st_..."} within AUTH_FRAME_WAIT_S of the upgrade."""
    frame = socket.receive(timeout=AUTH_FRAME_WAIT_S)
    try:
        message = json.loads(frame or b"")
        token = message["token"] if message.get("op") == "auth" else ""
    except (ValueError, TypeError, KeyError, AttributeError):
        token = ""
    if not isinstance(token, str) or not token.startswith(SESSION_TOKEN_PREFIX):
        raise Unauthorized("no auth frame")
    return device_of(token)


class _Socket:
    """simple-websocket's Server as dispatcher.delivery.stream.Socket."""

    def __init__(self, ws) -> None:
        self._ws = ws
        ws.sock = _WholeWrites(ws.sock)  # its own writes too (pings, pongs, the close)

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        try:
            return self._ws.receive(timeout=timeout)
        except ConnectionClosed:
            raise stream.SocketClosed() from None

    def send(self, frames: list[bytes]) -> None:
        """The frames made by wsproto (simple-websocket's framing), written at once."""
        if not self._ws.connected:
            raise stream.SocketClosed()
        try:
            data = b"".join(self._ws.ws.send(TextMessage(data=f.decode())) for f in frames)
            self._ws.sock.sendall(data)
        except (OSError, LocalProtocolError):
            raise stream.SocketClosed() from None

    def close(self, reason: int, message: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            self._ws.close(reason=reason, message=message)


class _WholeWrites:
    """A socket whose writes are whole and one at a time. simple-websocket writes with
    `send` and ignores what it returns: under gevent a write the kernel takes only part
    of loses the rest, which a batch of frames to a slow phone would meet. Here every
    write is a `sendall`, under a lock, so that its own writes (pings, pongs, the close)
    never land inside a batch of frames."""

    def __init__(self, sock) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        with self._lock:
            self._sock.sendall(data)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)
