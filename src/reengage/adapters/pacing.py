"""Pacers: platform rate limits held across every worker (Redis) or in-process.

Two kinds of limit, combined in one reservation:
- a *gap* (one chat: about 1 message/s) keeps successive sends at least 1/rate apart;
- a *rate* (one bot: about 30 messages/s) allows at most one send per 1/rate time slot, so
  other chats fill the slots a slow chat leaves free.
A reservation returns how long to wait for the earliest instant that satisfies both.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

import redis

# KEYS: gap pointers..., then rate-slot prefixes...; ARGV: n_gaps, then each key's rate.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n_gaps = tonumber(ARGV[1])
local at = now
for i = 1, n_gaps do
  local free = tonumber(redis.call('GET', KEYS[i]) or '0')
  if free > at then at = free end
end
local slots = {}
for guard = 1, 100000 do
  local moved = false
  for i = n_gaps + 1, #KEYS do
    local rate = tonumber(ARGV[i + 1])
    local slot = math.floor(at * rate)
    if redis.call('EXISTS', KEYS[i] .. ':' .. slot) == 1 then
      at = (slot + 1) / rate
      moved = true
    else
      slots[i] = slot
    end
  end
  if not moved then break end
end
local ttl = math.ceil((at - now) * 1000) + 2000
for i = 1, n_gaps do
  local rate = tonumber(ARGV[i + 1])
  redis.call('SET', KEYS[i], string.format('%.6f', at + 1 / rate), 'PX', ttl)
end
for i = n_gaps + 1, #KEYS do
  redis.call('SET', KEYS[i] .. ':' .. slots[i], '1', 'PX', ttl)
end
return string.format('%.6f', at - now)
"""


class InMemoryPacer:
    """Embedded mode: one process, one lock, the same algorithm as the Redis pacer, on the
    process' clock (`now`: seconds)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._free: dict[str, float] = {}
        self._taken: dict[tuple[str, int], float] = {}  # (key, slot) -> slot time
        self._lock = threading.Lock()

    def reserve(
        self, gaps: Sequence[tuple[str, float]], rates: Sequence[tuple[str, float]] = ()
    ) -> float:
        with self._lock:
            now = self._now()
            at = max([now, *(self._free.get(key, 0.0) for key, _ in gaps)])
            moved = True
            while moved:
                moved = False
                for key, rate in rates:
                    slot = math.floor(at * rate)
                    if (key, slot) in self._taken:
                        at, moved = (slot + 1) / rate, True
            for key, rate in gaps:
                self._free[key] = at + 1.0 / rate
            for key, rate in rates:
                self._taken[(key, math.floor(at * rate))] = at
            if len(self._taken) > 10_000:
                self._taken = {k: t for k, t in self._taken.items() if t > now - 5}
            return at - now


class RedisPacer:
    """Distributed mode: one Lua script on Redis' own clock, so workers on many machines agree."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(_RESERVE)

    def reserve(
        self, gaps: Sequence[tuple[str, float]], rates: Sequence[tuple[str, float]] = ()
    ) -> float:
        keys = [key for key, _ in gaps] + [key for key, _ in rates]
        args = [len(gaps), *(rate for _, rate in gaps), *(rate for _, rate in rates)]
        return float(self._script(keys=keys, args=args))


def pace(
    pacer: InMemoryPacer | RedisPacer,
    gaps: Sequence[tuple[str, float]],
    rates: Sequence[tuple[str, float]] = (),
    *,
    defer_over: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Reserve a slot and wait for it; return 0. A wait longer than `defer_over` is not slept
    through: it is returned, and the caller comes back when its reserved slot is due."""
    wait = pacer.reserve(gaps, rates)
    if defer_over is not None and wait > defer_over:
        return wait
    if wait > 0:
        sleep(wait)
    return 0.0
