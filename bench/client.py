"""A small asyncio HTTP/1.1 keep-alive client: the load generator of every HTTP figure.

One event loop drives all concurrent clients (a sender, a phone, a waiting device),
each on its own keep-alive connection, so that thousands of long polls cost a socket
each and no thread. It is much lighter than requests per call, which matters on a
2-core machine where the load generator shares the CPU with what it measures; the
same client drives Pushbox and the HTTP ceiling (`GET /healthz`), like for like.
"""

from __future__ import annotations

import asyncio
import json
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
        for attempt in (1, 2):  # a keep-alive connection the server closed: once more
            try:
                reader, writer = await self._open()
                writer.write(raw)
                return await asyncio.wait_for(self._read(reader), timeout)
            except TimeoutError:  # an OSError too: before the next clause
                self.close()
                raise HttpError(f"{method} {path}: no answer within {timeout} s") from None
            except (OSError, asyncio.IncompleteReadError) as e:  # reset, refused, no fds
                self.close()
                if attempt == 2:
                    raise HttpError(f"{method} {path}: {e!r}") from None
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
