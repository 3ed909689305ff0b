"""Redis: one client per process (its pool is thread-safe), errors mapped to ours, and
a pipeline shared by concurrent callers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from pushbox_core.batching import Batcher
from pushbox_core.errors import CacheUnavailable

MAX_CONNECTIONS = 500  # a process serves thousands of greenlets; each call is short
POOL_WAIT_S = 5


def connect(url: str) -> redis.Redis:
    """A client; it opens connections on first use, not here."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,  # a burst waits for a connection instead of failing
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
        decode_responses=True,
    )
    return redis.Redis(connection_pool=pool)


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn Redis connection trouble into CacheUnavailable."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
        raise CacheUnavailable(str(e)) from None


class SharedPipeline:
    """Commands from concurrent callers, sent together in one pipeline (one round trip)
    and answered each on its own: `pipeline("EVALSHA", ...)` returns that command's
    reply, or raises its error (a redis ResponseError) or CacheUnavailable;
    `pipeline.several([command, ...])` sends a caller's commands in order, in the same
    round trip as everyone else's, and returns their replies; if one of them fails, it
    raises that command's error (the others ran: a pipeline is not a transaction).

    Lua scripts go by their sha, `("EVALSHA", pipeline.script(source), ...)`: a script
    Redis does not know (it restarted, or never saw it) is loaded and its commands run
    again in the same call, so callers never see NOSCRIPT."""

    def __init__(self, client: redis.Redis, *, name: str = "redis-pipeline"):
        self._client = client
        self._scripts: dict[str, str] = {}  # sha -> source, for EVALSHA commands
        self._batcher: Batcher[tuple[tuple, ...], list[Any]] = Batcher(
            self._run, name=name, unavailable=CacheUnavailable
        )

    def script(self, source: str) -> str:
        """A Lua script's sha, for EVALSHA commands (computed here: nothing is sent)."""
        sha = self._client.register_script(source).sha
        self._scripts[sha] = source
        return sha

    def __call__(self, *command: Any) -> Any:
        return self._batcher((command,))[0]

    def several(self, commands: Sequence[tuple]) -> list[Any]:
        return self._batcher(tuple(commands))

    def close(self) -> None:
        self._batcher.close()

    def _run(self, items: list[tuple[tuple, ...]]) -> list[list[Any] | Exception]:
        commands = [command for mine in items for command in mine]
        with redis_errors():
            replies = self._execute(commands)
            forgotten = [
                i
                for i, (command, reply) in enumerate(zip(commands, replies, strict=True))
                if isinstance(reply, redis.exceptions.NoScriptError)
                and command[0] == "EVALSHA"
                and command[1] in self._scripts
            ]
            if forgotten:  # they did not run: load their scripts, run them again
                for sha in {commands[i][1] for i in forgotten}:
                    self._client.script_load(self._scripts[sha])
                again = self._execute([commands[i] for i in forgotten])
                for i, reply in zip(forgotten, again, strict=True):
                    replies[i] = reply
        answers: list[list[Any] | Exception] = []
        at = 0
        for sent in items:
            mine = replies[at : at + len(sent)]
            at += len(sent)
            failed = next((r for r in mine if isinstance(r, Exception)), None)
            answers.append(failed if failed is not None else mine)
        return answers

    def _execute(self, commands: list[tuple]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return pipe.execute(raise_on_error=False)
