"""Pacers: strict spacing of sends per key, shared by all workers (Redis) or in-process.

A reservation takes the first instant free under every key at once (e.g. the bot's 30/s and
the chat's 1/s) and books it, so concurrent senders queue up instead of bursting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import redis

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local slot = now
for i, k in ipairs(KEYS) do
  local free = tonumber(redis.call('GET', k) or '0')
  if free > slot then slot = free end
end
for i, k in ipairs(KEYS) do
  local interval = tonumber(ARGV[i])
  local ttl = math.ceil((slot - now + interval) * 1000) + 1000
  redis.call('SET', k, string.format('%.6f', slot + interval), 'PX', ttl)
end
return string.format('%.6f', slot - now)
"""


class InMemoryPacer:
    """Embedded mode: one process, one lock."""

    def __init__(self) -> None:
        self._free: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, limits: Sequence[tuple[str, float]]) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max([now, *(self._free.get(key, 0.0) for key, _ in limits)])
            for key, rate in limits:
                self._free[key] = slot + 1.0 / rate
            return slot - now


class RedisPacer:
    """Distributed mode: one Lua script on Redis' own clock, so workers on many machines agree."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(_RESERVE)

    def reserve(self, limits: Sequence[tuple[str, float]]) -> float:
        keys = [key for key, _ in limits]
        intervals = [1.0 / rate for _, rate in limits]
        return float(self._script(keys=keys, args=intervals))


def pace(pacer: InMemoryPacer | RedisPacer, limits: Sequence[tuple[str, float]]) -> None:
    """Reserve a slot and wait for it."""
    wait = pacer.reserve(limits)
    if wait > 0:
        time.sleep(wait)
