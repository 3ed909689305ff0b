"""MySQL connections: a small pool of pymysql connections, one user at a time.

A pymysql connection is not thread-safe (threadsafety = 1), and opening one costs more
than a query, so connections are lent from a pool and reused. A connection that failed
is dropped, never reused. Only Pushbox errors escape for connection trouble.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pymysql.cursors
from pymysql.connections import Connection

from pushbox_core.errors import DatabaseUnavailable
from pushbox_core.forks import ForkGuard

POOL_SIZE_MAX = 32
PING_AFTER_IDLE_S = 30.0

# errors that mean the connection (not the statement) is broken
CONNECTION_ERRORS = (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError)


class Database:
    def __init__(self, *, host: str, port: int, user: str, password: str, database: str | None):
        self._kwargs: dict[str, Any] = dict(
            host=host,
            port=port,
            user=user,
            password=password,
            database=database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=5,
            read_timeout=30,
            write_timeout=30,
            cursorclass=pymysql.cursors.DictCursor,
        )
        self._lock = threading.Lock()
        self._idle: list[tuple[Connection, float]] = []
        self._fork = ForkGuard()

    @classmethod
    def from_settings(cls, settings, *, database: str | None = ...) -> Database:  # type: ignore[assignment]
        return cls(
            host=settings.mysql_host,
            port=settings.mysql_port,
            user=settings.mysql_user,
            password=settings.mysql_password,
            database=settings.mysql_database if database is ... else database,
        )

    def _take(self) -> Connection:
        with self._lock:
            if self._fork.forked():  # the parent's connections are not ours
                self._idle = []
            conn, since = self._idle.pop() if self._idle else (None, 0.0)
        if conn is not None:
            if time.monotonic() - since < PING_AFTER_IDLE_S:
                return conn
            try:
                conn.ping(reconnect=False)
                return conn
            except CONNECTION_ERRORS:
                _close_quietly(conn)
        return pymysql.connect(**self._kwargs)

    def _give_back(self, conn: Connection) -> None:
        with self._lock:
            if self._fork.ours and len(self._idle) < POOL_SIZE_MAX:
                self._idle.append((conn, time.monotonic()))
                return
        _close_quietly(conn)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Lend an autocommit connection."""
        try:
            conn = self._take()
        except CONNECTION_ERRORS as e:
            raise DatabaseUnavailable(str(e)) from None
        try:
            yield conn
        except CONNECTION_ERRORS as e:
            _close_quietly(conn)
            raise DatabaseUnavailable(str(e)) from None
        except BaseException:
            _close_quietly(conn)
            raise
        else:
            self._give_back(conn)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside BEGIN ... COMMIT; any exception rolls back."""
        with self.connection() as conn:
            conn.begin()
            try:
                with conn.cursor() as cur:
                    yield cur
                conn.commit()
            except BaseException:
                with contextlib.suppress(*CONNECTION_ERRORS):
                    conn.rollback()
                raise

    def query(self, sql: str, args: object = None) -> list[dict[str, Any]]:
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())  # type: ignore[arg-type]  # DictCursor

    def query_one(self, sql: str, args: object = None) -> dict[str, Any] | None:
        rows = self.query(sql, args)
        return rows[0] if rows else None

    def execute(self, sql: str, args: object = None) -> int:
        """Run one autocommit statement; returns the last insert id or the row count."""
        with self.connection() as conn, conn.cursor() as cur:
            count = cur.execute(sql, args)
            return cur.lastrowid or count

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            _close_quietly(conn)


def _close_quietly(conn: Connection) -> None:
    with contextlib.suppress(Exception):
        conn.close()
