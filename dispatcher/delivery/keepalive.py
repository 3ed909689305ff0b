"""What an open stream keeps alive in Redis, renewed every ALIVE_EVERY_S or so (see
stream.py): the device's `connected` mark (no platform wake), its presence (`online`),
and the stream's claim on the device (holders.py). Every stream of the process renews
in the same round trip as the others waiting then (a shared pipeline): at 10,000 open
streams that was three round trips a stream, 1,500 a second, each a greenlet's socket
write and read.
"""

from __future__ import annotations

from dataclasses import dataclass

from device_registry.sessions import Sessions
from dispatcher.delivery.connections import Connections, new_mark
from dispatcher.delivery.holders import Holders
from pushbox_core.redis_client import SharedPipeline


@dataclass(frozen=True)
class Kept:
    mark: str  # the connected mark set now (Connections.disconnect takes it)
    holding: bool  # the stream's claim is still the device's: no other sync or stream took it
    activity_due: bool  # the device's activity is to be written to MySQL (Sessions.seen)


class KeepAlive:
    def __init__(
        self,
        pipeline: SharedPipeline,
        connections: Connections,
        holders: Holders,
        sessions: Sessions,
    ):
        self._pipeline = pipeline
        self._connections = connections
        self._holders = holders
        self._sessions = sessions

    def renew(self, device_id: str, claim: str, seconds: float) -> Kept:
        """Mark the device connected for `seconds` (+ grace), seen now, and keep the
        stream's claim. Raises CacheUnavailable."""
        mark = new_mark()
        renew = self._holders.renew_commands(device_id)
        seen = self._sessions.seen_commands(device_id)
        replies = self._pipeline.several(
            [self._connections.mark_command(device_id, mark, seconds), *renew, *seen]
        )
        held, seen_replies = replies[1 : 1 + len(renew)], replies[1 + len(renew) :]
        return Kept(
            mark=mark,
            holding=self._holders.renewed(held, claim),
            activity_due=self._sessions.activity_due(seen_replies),
        )

    def close(self) -> None:
        self._pipeline.close()
