"""The marketing cap (`marketing_cap_per_day`): a device gets at most that many
normal-priority campaign and broadcast messages a calendar day (UTC), judged when
they are published; the rest are skipped for that device and counted `capped`.

Kept in Redis, per UTC day:
- a set per device of the normal-priority campaigns it was given that day;
- a set per app of the normal-priority broadcasts it sent that day. A broadcast is one
  publish to a fanout exchange, which can't skip a device: it always goes to every
  device, and it counts against every device's cap of that day (a device that
  registered after it included). A campaign then gives a device what is left.

Judging a chunk is one Lua call, atomic, and the same answer when a chunk runs again:
a device given this campaign already is given it again (a copy, deduped by its id),
never counted twice. Sets are kept two days (a day, and the hours around midnight)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import redis

from pushbox_core.errors import PushboxError
from pushbox_core.names import Names
from pushbox_core.redis_client import redis_errors

log = logging.getLogger(__name__)

KEEP_S = 2 * 86_400

# KEYS[1]: the app's broadcasts of the day; KEYS[2..]: each device's campaigns of the
# day. ARGV: cap, campaign id, seconds to keep. Returns 1 (give) or 0 (capped) a device.
JUDGE = """
local cap = tonumber(ARGV[1])
local used_by_all = redis.call('SCARD', KEYS[1])
local out = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  if redis.call('SISMEMBER', key, ARGV[2]) == 1 then
    out[#out + 1] = 1
  elseif used_by_all + redis.call('SCARD', key) < cap then
    redis.call('SADD', key, ARGV[2])
    redis.call('EXPIRE', key, ARGV[3])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# with no cap, only remember what each device got (a cap set later that day counts it)
RECORD = """
for i = 1, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
return #KEYS
"""


def utc_day(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y%m%d")


class Caps:
    def __init__(self, client: redis.Redis, names: Names):
        self.redis = client
        self.names = names
        self._judge = client.register_script(JUDGE)
        self._record = client.register_script(RECORD)

    def judge(
        self, app_id: str, campaign_id: str, device_ids: Sequence[int], cap: int | None
    ) -> list[bool]:
        """For each device: may it be given this normal-priority campaign message now?
        Those given it are counted against their cap of the day."""
        if not device_ids:
            return []
        day = utc_day()
        keys = [self.names.cap_device_key(app_id, str(d), day) for d in device_ids]
        with redis_errors():
            if cap is None:
                self._record(keys=keys, args=[campaign_id, KEEP_S])
                return [True] * len(device_ids)
            given = self._judge(
                keys=[self.names.cap_broadcasts_key(app_id, day), *keys],
                args=[cap, campaign_id, KEEP_S],
            )
        return [bool(g) for g in given]

    def count_broadcast(self, app_id: str, message_id: str) -> None:
        """A normal-priority broadcast went to every device of the app today. Best
        effort: without Redis the broadcast still goes, and is not counted (logged)."""
        key = self.names.cap_broadcasts_key(app_id, utc_day())
        try:
            with redis_errors():
                pipe = self.redis.pipeline(transaction=False)
                pipe.sadd(key, message_id)
                pipe.expire(key, KEEP_S)
                pipe.execute()
        except PushboxError as e:
            log.warning("broadcast %s not counted against the marketing cap: %s", message_id, e)
