"""A small asyncio HTTP/1.1 keep-alive client: the load generator of every HTTP figure.

One event loop drives all concurrent clients (a sender, a phone, a waiting device),
each on its own keep-alive connection, so that thousands of long polls cost a socket
each and no thread. It is much lighter than requests per call, which matters on a
2-core machine where the load generator shares the CPU with what it measures; the
same client drives Pushbox and the HTTP ceiling (`GET /healthz`), like for like.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    def json(self) -> dict:
        return json.loads(self.body)


class HttpError(Exception):
    pass


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._host_header = f"{self.host}:{self.port}".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 22
            )
        return self._reader, self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Answer:
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self._host_header]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}".encode())
        if body is not None:
            lines.append(b"Content-Type: application/json")
        if payload or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: " + str(len(payload)).encode())
        raw = b"\r\n".join(lines) + b"\r\n\r\n" + payload
        try:
            # connecting too: a listen queue that is full answers no SYN for minutes
            async with asyncio.timeout(timeout):
                for attempt in (1, 2):  # a keep-alive connection the server closed: once more
                    try:
                        reader, writer = await self._open()
                        writer.write(raw)
                        return await self._read(reader)
                    except (OSError, asyncio.IncompleteReadError) as e:  # reset, refused, no fds
                        self.close()
                        if attempt == 2 or isinstance(e, TimeoutError):
                            raise HttpError(f"{method} {path}: {e!r}") from None
        except TimeoutError:
            self.close()
            raise HttpError(f"{method} {path}: no answer within {timeout} s") from None
        raise AssertionError("unreachable")

    async def _read(self, reader: asyncio.StreamReader) -> Answer:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = None, False, False
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            headers[name.decode(errors="replace")] = value.strip().decode(errors="replace")
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            data = b"".join(parts)
        elif length is not None:
            data = await reader.readexactly(length)
        else:
            data = await reader.read()
            close = True
        if close:
            self.close()
        return Answer(status, data, headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class StreamClosed(Exception):
    """The server closed the WebSocket (`code`), or the connection dropped (None)."""

    def __init__(self, code: int | None, reason: str = ""):
        super().__init__(f"stream closed: {code} {reason}".strip())
        self.code = code


class LeanStream:
    """A WebSocket client as small as the drain needs (RFC 6455): the upgrade, the
    server's text frames read from one buffer many at a time, pings answered, masked
    text frames out. The drain's baselines read with lean clients too (pika, paho);
    the `websockets` library, which the other stream figures use, costs this 2-core
    machine about twice the CPU a message, and the client shares the cores with the
    server it measures. No extensions (no compression) are asked for."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader, self._writer = reader, writer
        self._buf = bytearray()
        self._pos = 0

    @classmethod
    async def open(cls, base_url: str, path: str, headers: dict[str, str]) -> LeanStream:
        parts = urlsplit(base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        key = base64.b64encode(os.urandom(16))
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key.decode()}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        accept = base64.b64encode(hashlib.sha1(key + cls.GUID).digest())
        if status != b"101" or b"sec-websocket-accept: " + accept.lower() not in head.lower():
            writer.close()
            raise StreamClosed(None, f"upgrade refused: {head[:200]!r}")
        return cls(reader, writer)

    async def frames(self) -> list[bytes]:
        """The text frames that have arrived (at least one): waits for data when none."""
        out: list[bytes] = []
        while not out:
            out = self._parse()
            if not out:
                data = await self._reader.read(1 << 18)
                if not data:
                    raise StreamClosed(None, "connection dropped")
                del self._buf[: self._pos]
                self._pos = 0
                self._buf += data
        return out

    def _parse(self) -> list[bytes]:
        buf, pos, out = self._buf, self._pos, []
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, head = b1 & 0x7F, 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if len(buf) - pos < head + n:
                break
            payload = bytes(buf[pos + head : pos + head + n])
            pos += head + n
            opcode = b0 & 0x0F
            if not b0 & 0x80 or opcode == 0:
                raise StreamClosed(None, "fragmented frames: not expected from this server")
            if opcode == 1:
                out.append(payload)
            elif opcode == 9:  # ping
                self._write(0xA, payload)
            elif opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._pos = pos
                raise StreamClosed(code, payload[2:].decode(errors="replace"))
        self._pos = pos
        return out

    def send_text(self, text: str) -> None:
        self._write(0x1, text.encode())

    def _write(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        whole = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(whole, "big")).to_bytes(n, "big")
        self._writer.write(head + mask + masked)

    async def close(self) -> None:
        """A close frame (1000), then hang up."""
        with contextlib.suppress(OSError):
            self._write(0x8, struct.pack("!H", 1000))
            await self._writer.drain()
        self._writer.close()
