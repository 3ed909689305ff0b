"""What an open stream keeps alive in Redis, renewed every 15-20 s (see stream.py): the
stream's claim on the device (holders.py), its `connected` mark (no platform wake) and
its presence (`online`). Every stream of the process renews in the same round trip as
the others due then (a shared pipeline): at 10,000 open streams that was three round
trips a stream, about 1,700 a second, each a greenlet's socket write and read.

The claim and the mark go together in one script: a stream that another sync or stream
has replaced neither keeps the claim nor marks the device, since that mark would stand
in for the newer one's, and lapse or linger on this stream's account.
"""

from __future__ import annotations

from dataclasses import dataclass

from device_registry.sessions import Sessions
from dispatcher.delivery.connections import GRACE_S, new_mark
from dispatcher.delivery.holders import Holders
from pushbox_core.names import Names
from pushbox_core.redis_client import SharedPipeline

# while KEYS[1] (the holder) is ARGV[1] (the stream's claim): keep it ARGV[2] s more and
# set KEYS[2] (connected) to ARGV[3] for ARGV[4] s; 1. Otherwise nothing, and 0.
KEEP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
return 1
"""


@dataclass(frozen=True)
class Kept:
    holding: bool  # the claim is still the device's: no other sync or stream took it
    mark: str | None  # the connected mark set now, for Connections.disconnect (if holding)
    activity_due: bool  # the device's activity is to be written to MySQL (Sessions.seen)


class KeepAlive:
    def __init__(self, pipeline: SharedPipeline, names: Names, sessions: Sessions):
        self._pipeline = pipeline
        self._names = names
        self._sessions = sessions
        self._sha = pipeline.script(KEEP)

    def renew(self, device_id: str, claim: str, seconds: float) -> Kept:
        """Keep the stream's claim and mark the device connected for `seconds` (+ grace)
        while the claim is the device's; the device is seen now either way. Raises
        CacheUnavailable."""
        mark = new_mark()
        keep = (
            "EVALSHA",
            self._sha,
            2,
            self._names.holder_key(device_id),
            self._names.connected_key(device_id),
            claim,
            Holders.KEEP_S,
            mark,
            int(seconds) + GRACE_S,
        )
        replies = self._pipeline.several([keep, *self._sessions.seen_commands(device_id)])
        holding = bool(replies[0])
        activity_due = self._sessions.activity_due(replies[1:])
        return Kept(holding=holding, mark=mark if holding else None, activity_due=activity_due)

    def close(self) -> None:
        self._pipeline.close()
