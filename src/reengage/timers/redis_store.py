"""The Redis timer store: a sorted set of keys by claimable time, a hash of timer data.

Every mutation is one Lua script, so a claim never sees half a schedule and any number of
schedulers can claim concurrently. A hash value is `version|token|attempts|due_ms|purpose|payload`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import redis
import redis.asyncio

from reengage.adapters.redis.loop_calls import loop_calls
from reengage.adapters.redis.shards import AsyncClient, SyncClient, script
from reengage.domain.timer import Backlog, ClaimedTimer, Payload, Timer

_SCHEDULE = """
local only_missing = ARGV[1] == '1'
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
head = head and tonumber(head) or math.huge
local earliest = math.huge
local n = 0
for i = 3, #ARGV, 4 do
  local k, score, ver, val = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local cur = redis.call('HGET', KEYS[2], k)
  local ok
  if only_missing then ok = not cur
  else ok = (not cur) or tonumber(string.match(cur, '^(-?%d+)|')) <= ver end
  if ok then
    redis.call('ZADD', KEYS[1], score, k)
    redis.call('HSET', KEYS[2], k, val)
    redis.call('ZREM', KEYS[3], k)
    n = n + 1
    earliest = math.min(earliest, tonumber(score))
  end
end
-- Sleeping schedulers hear of a timer due before the one they wait for.
if earliest < head then redis.call('PUBLISH', ARGV[2], string.format('%d', earliest)) end
return n
"""

_CLAIM = """
local ks = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local lease_until = math.floor(tonumber(ARGV[1])) + tonumber(ARGV[3])
local out = {}
for _, k in ipairs(ks) do
  local v = redis.call('HGET', KEYS[2], k)
  if v then
    local ver, tok, att, rest = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
    local nv = ver .. '|' .. tok .. '|' .. (tonumber(att) + 1) .. '|' .. rest
    redis.call('HSET', KEYS[2], k, nv)
    redis.call('ZADD', KEYS[1], lease_until, k)
    if att == '0' then redis.call('ZADD', KEYS[3], lease_until, k) end
    out[#out + 1] = k
    out[#out + 1] = nv
  else
    redis.call('ZREM', KEYS[1], k)
  end
end
return out
"""

_ACK = """
local n = 0
for i = 1, #ARGV, 2 do
  redis.call('ZREM', KEYS[3], ARGV[i])
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if v and string.match(v, '^[^|]*|([^|]*)|') == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n
"""

# Cancel: one script rather than a MULTI, which a cluster client does not send.
_CANCEL = """
for _, k in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], k)
  redis.call('HDEL', KEYS[2], k)
  redis.call('ZREM', KEYS[3], k)
end
return 0
"""

_IN_FLIGHT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""

_CHUNK = 1000


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def score(key: str, due_ms: int) -> str:
    """A timer's place in the sorted set: its due millisecond and a fraction of one from its
    key (0.000-0.899, the same in `activity_scripts`). Timers due together are claimed in an
    order spread over bots and users, not by key (one bot's silences after another's);
    `claim_bound` covers every fraction of a due millisecond, so nothing is claimed early."""
    return f"{due_ms}.{int(hashlib.sha1(key.encode()).hexdigest()[:4], 16) % 900:03d}"


def claim_bound(now: datetime) -> str:
    """The highest score due at `now`: its millisecond with every key's fraction."""
    return f"{_ms(now)}.95"


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _encode(timer: Timer, token: str) -> str:
    payload = json.dumps(timer.payload, separators=(",", ":"))
    return f"{timer.version}|{token}|0|{_ms(timer.due_at)}|{timer.purpose}|{payload}"


def _decode(key: str, value: str) -> ClaimedTimer:
    version, token, attempts, due_ms, purpose, payload = value.split("|", 5)
    data: Payload = json.loads(payload)
    timer = Timer(key, purpose, _from_ms(int(due_ms)), int(version), data)
    return ClaimedTimer(timer, token, int(attempts))


class RedisTimerStore:
    """Pending timers in Redis (one shard of them: `tag`, its hash tag; None: the names of a
    single instance); rebuilt from the database when Redis comes back empty."""

    def __init__(
        self, client: SyncClient, namespace: str = "reengage", tag: str | None = None
    ) -> None:
        self._r = client
        # One hash tag: every key of the store lands in the same slot on Redis Cluster.
        prefix = f"{{{namespace}:timers}}" if tag is None else f"{{{tag}}}:timers"
        self._zset = f"{prefix}:due"
        self._hash = f"{prefix}:data"
        self._sentinel = f"{prefix}:built"
        # First claims by the end of their lease: what is in flight.
        self._leased = f"{prefix}:leased"
        # One channel for every shard (a channel is not a key: any node may publish to it).
        # Channels are server-wide, not per database: the database number keeps two
        # deployments on one Redis (databases 0 and 1, say) from waking each other.
        pool = getattr(client, "connection_pool", None)
        db = pool.connection_kwargs.get("db", 0) if pool is not None else 0
        self._channel = f"{{{namespace}:timers}}:wake" + (f":{db}" if db else "")
        self._schedule = script(client, _SCHEDULE)
        self._claim = script(client, _CLAIM)
        self._ack = script(client, _ACK)
        self._cancel = script(client, _CANCEL)
        self._count_leased = script(client, _IN_FLIGHT)

    @classmethod
    def from_url(cls, url: str, namespace: str = "reengage") -> RedisTimerStore:
        return cls(redis.Redis.from_url(url, decode_responses=True), namespace)

    @property
    def client(self) -> SyncClient:
        return self._r

    @property
    def keys(self) -> tuple[str, str]:
        return self._zset, self._hash

    @property
    def wake_channel(self) -> str:
        """Where a schedule earlier than every pending timer is announced (its due, in ms)."""
        return self._channel

    @property
    def _all_keys(self) -> list[str]:
        return [self._zset, self._hash, self._leased]

    def _write(self, timers: Sequence[Timer], only_missing: bool) -> int:
        added = 0
        for start in range(0, len(timers), _CHUNK):
            args: list[str | int] = ["1" if only_missing else "0", self._channel]
            for t in timers[start : start + _CHUNK]:
                args += [
                    t.key,
                    score(t.key, _ms(t.due_at)),
                    t.version,
                    _encode(t, uuid.uuid4().hex),
                ]
            added += int(self._schedule(keys=self._all_keys, args=args))
        return added

    def schedule(self, timers: Sequence[Timer]) -> None:
        self._write(timers, only_missing=False)

    async def schedule_on_loop(self, client: AsyncClient, timers: Sequence[Timer]) -> None:
        """`schedule` by an asyncio client of the same Redis, on its event loop (with other
        requests' script calls in one pipeline); by `schedule` in a thread when Redis lacks
        the script (it restarted: `schedule` loads it again)."""
        calls = loop_calls(client) if isinstance(client, redis.asyncio.Redis) else None
        try:
            for start in range(0, len(timers), _CHUNK):
                args: list[str | int] = ["0", self._channel]
                for t in timers[start : start + _CHUNK]:
                    args += [
                        t.key,
                        score(t.key, _ms(t.due_at)),
                        t.version,
                        _encode(t, uuid.uuid4().hex),
                    ]
                if calls is not None:
                    await calls.evalsha(self._schedule.sha, 3, *self._all_keys, *args)
                else:
                    await client.evalsha(self._schedule.sha, 3, *self._all_keys, *args)  # type: ignore[misc, arg-type]
        except redis.exceptions.NoScriptError:
            await asyncio.to_thread(self.schedule, timers)  # idempotent: versions only rise

    def schedule_missing(self, timers: Sequence[Timer]) -> int:
        return self._write(timers, only_missing=True)

    def cancel(self, keys: Sequence[str]) -> None:
        if keys:
            self._cancel(keys=self._all_keys, args=list(keys))

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[ClaimedTimer]:
        lease_ms = int(lease.total_seconds() * 1000)
        flat = self._claim(keys=self._all_keys, args=[claim_bound(now), limit, lease_ms])
        claimed = [_decode(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        return sorted(claimed, key=lambda c: c.timer.due_at)

    def ack(self, claimed: Sequence[ClaimedTimer]) -> int:
        if not claimed:
            return 0
        args: list[str] = []
        for item in claimed:
            args += [item.timer.key, item.token]
        return int(self._ack(keys=self._all_keys, args=args))

    def get(self, key: str) -> Timer | None:
        value = self._r.hget(self._hash, key)
        return _decode(key, str(value)).timer if value is not None else None

    def count(self) -> int:
        return int(cast(int, self._r.zcard(self._zset)))

    def next_due(self) -> datetime | None:
        first = cast(list[tuple[str, float]], self._r.zrange(self._zset, 0, 0, withscores=True))
        return _from_ms(int(first[0][1])) if first else None

    def in_flight(self, now: datetime) -> int:
        return int(self._count_leased(keys=[self._leased], args=[_ms(now)]))

    def backlog(self, now: datetime) -> Backlog:
        pipe = self._r.pipeline(transaction=False)
        pipe.zcount(self._zset, "-inf", claim_bound(now))
        pipe.zrange(self._zset, 0, 0, withscores=True)
        due, first = pipe.execute()
        return Backlog(int(due), _from_ms(int(first[0][1])) if due and first else None)

    def wakeups(self) -> RedisWakeups:
        return RedisWakeups(self._r, self._channel)

    def needs_rebuild(self) -> bool:
        return not self._r.exists(self._sentinel)

    def mark_rebuilt(self) -> None:
        self._r.set(self._sentinel, datetime.now(UTC).isoformat())


class RedisWakeups:
    """A subscription to the store's wake channel: every process's schedules reach it."""

    # The longest one socket wait lasts, so `wait` returns on time for a caller that checks
    # something else (a stop) between waits.
    _SLICE = 0.25

    def __init__(self, client: SyncClient, channel: str) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.subscribe(channel)

    @property
    def complete(self) -> bool:
        return True

    def arm(self) -> None:
        while self._pubsub.get_message(timeout=0.0) is not None:
            pass

    def wait(self, until: datetime, seconds: float) -> bool:
        end = time.monotonic() + max(0.0, seconds)
        limit = _ms(until)
        while (left := end - time.monotonic()) > 0:
            message = self._pubsub.get_message(timeout=min(left, self._SLICE))
            if message is not None and _due_before(message["data"], limit):
                return True
        return False

    def close(self) -> None:
        self._pubsub.close()


def _due_before(data: object, limit_ms: int) -> bool:
    """Whether a wake message announces a timer due before `limit_ms` (anything unreadable
    wakes the scheduler: a look too many costs one round)."""
    try:
        text = data.decode() if isinstance(data, bytes) else str(data)
        return int(text) < limit_ms
    except ValueError:
        return True
