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
from dataclasses import dataclass
from typing import cast

from redis.cluster import RedisCluster
from redis.crc import key_slot

from reengage.adapters.redis.shards import SyncClient, script

# KEYS: gap pointers..., then rate-slot prefixes...; ARGV: n_gaps, then each key's rate,
# then the instant of a slot the caller held and is late for (-1: none).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n_gaps = tonumber(ARGV[1])
local held = tonumber(ARGV[#KEYS + 2])
local at = now
for i = 1, n_gaps do
  local free = tonumber(redis.call('GET', KEYS[i]) or '0')
  if held >= 0 and math.abs(free - (held + 1 / tonumber(ARGV[i + 1]))) < 0.00001 then
    free = held  -- the last reservation here is the caller's own: nobody waits behind it
  end
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
      -- (slot + 1) / rate * rate can round back below slot + 1: step past it
      while math.floor(at * rate) <= slot do at = at + at * 4.5e-16 + 1e-300 end
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
return {string.format('%.6f', at), string.format('%.6f', at - now)}
"""

# KEYS: gap pointers; ARGV: the instant (seconds) before which none of them may send again.
# Used after a platform's retry_after, so every worker holds off that chat.
_HOLD = """
local hold_to = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, #KEYS do
  local free = tonumber(redis.call('GET', KEYS[i]) or '0')
  if hold_to > free then
    redis.call('SET', KEYS[i], string.format('%.6f', hold_to), 'PX',
      math.max(1, math.ceil((hold_to - now) * 1000) + 2000))
  end
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Slot:
    """A reserved send instant `at` (the pacer's seconds) and the wait for it from now."""

    at: float
    wait: float


def _slot_start(slot: int, rate: float) -> float:
    """The first instant of a slot: `slot / rate`, stepped up where floating point rounds
    it into the slot before (which would find the same taken slot again, for ever)."""
    at = slot / rate
    while math.floor(at * rate) < slot:
        at = math.nextafter(at, math.inf)
    return at


class InMemoryPacer:
    """Embedded mode: one process, one lock, the same algorithm as the Redis pacer, on the
    process' real time (`now`: seconds; a test's manual clock in tests)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._free: dict[str, float] = {}
        self._taken: dict[tuple[str, int], float] = {}  # (key, slot) -> slot time
        self._lock = threading.Lock()

    def reserve(
        self,
        gaps: Sequence[tuple[str, float]],
        rates: Sequence[tuple[str, float]] = (),
        late_for: float | None = None,
    ) -> Slot:
        with self._lock:
            now = self._now()
            at = max(
                [now, *(_free(self._free.get(key, 0.0), rate, late_for) for key, rate in gaps)]
            )
            moved = True
            while moved:
                moved = False
                for key, rate in rates:
                    slot = math.floor(at * rate)
                    if (key, slot) in self._taken:
                        at, moved = _slot_start(slot + 1, rate), True
            for key, rate in gaps:
                self._free[key] = at + 1.0 / rate
            for key, rate in rates:
                self._taken[(key, math.floor(at * rate))] = at
            if len(self._taken) > 10_000:
                self._taken = {k: t for k, t in self._taken.items() if t > now - 5}
            return Slot(at, at - now)

    def hold(self, keys: Sequence[str], until: float) -> None:
        with self._lock:
            for key in keys:
                self._free[key] = max(self._free.get(key, 0.0), until)

    def now(self) -> float:
        return self._now()


class RedisPacer:
    """Distributed mode: one Lua script on Redis' own clock, so workers on many machines agree
    (`now`: a test's manual clock instead)."""

    def __init__(self, client: SyncClient, now: Callable[[], float] | None = None) -> None:
        # On a cluster a script runs on one slot: the keys of a reservation share a hash tag.
        self._one_slot = isinstance(client, RedisCluster)
        self._script = script(client, _RESERVE if now is None else _with_now(_RESERVE))
        self._hold = script(client, _HOLD if now is None else _with_now(_HOLD))
        self._client = client
        self._now = now

    def _time(self) -> list[float]:
        return [] if self._now is None else [self._now()]

    def reserve(
        self,
        gaps: Sequence[tuple[str, float]],
        rates: Sequence[tuple[str, float]] = (),
        late_for: float | None = None,
    ) -> Slot:
        """The earliest instant that keeps every gap and finds a free slot of every rate.
        `late_for`: the caller's own earlier reservation, which it missed; where nobody has
        reserved after it, the gap counts from it, not from behind it."""
        keys = [key for key, _ in gaps] + [key for key, _ in rates]
        self._check_slot(keys)
        args = [len(gaps), *(rate for _, rate in gaps), *(rate for _, rate in rates)]
        held = -1.0 if late_for is None else late_for
        at, wait = self._script(keys=keys, args=[*args, held, *self._time()])
        return Slot(float(at), float(wait))

    def _check_slot(self, keys: Sequence[str]) -> None:
        if self._one_slot and len({key_slot(k.encode()) for k in keys}) > 1:
            raise ValueError(f"pacing keys {list(keys)} must share one hash tag on a cluster")

    def hold(self, keys: Sequence[str], until: float) -> None:
        self._check_slot(keys)
        self._hold(keys=list(keys), args=[until, *self._time()])

    def now(self) -> float:
        if self._now is not None:
            return self._now()
        seconds, micros = cast(tuple[int, int], self._client.time())
        return float(seconds) + float(micros) / 1_000_000


def _with_now(script: str) -> str:
    """The script on the caller's clock (its last argument) instead of Redis' TIME."""
    return script.replace(
        "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) + tonumber(t[2]) / 1000000",
        "local now = tonumber(ARGV[#ARGV])",
    )


Pacer = InMemoryPacer | RedisPacer


def _free(free: float, rate: float, late_for: float | None) -> float:
    """When a gap lets the next send go: its pointer, unless the pointer is the caller's own
    missed reservation (nobody reserved after it), which frees the gap from that instant."""
    if late_for is not None and abs(free - (late_for + 1.0 / rate)) < 1e-5:
        return late_for
    return free


# A send this late for its reserved slot has lost it: arriving late, it would crowd the
# slots after it (late sends bunch up), so it reserves again — from its own missed slot where
# nobody reserved after it, so a late return is not pushed a whole chat gap back (and handed
# back again, and again, while a busy scheduler keeps it late).
LATE_FOR_SLOT = 0.02


def take_slot(
    pacer: Pacer,
    gaps: Sequence[tuple[str, float]],
    rates: Sequence[tuple[str, float]] = (),
    *,
    held: float | None = None,
    defer_over: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Slot | None:
    """Be in a send slot at the moment of sending: the slot `held` from an earlier hand-back
    if it is still ahead (or only just past), else a new reservation. Returns None when the
    request may go now (after sleeping a short wait); a Slot to come back for when the wait is
    longer than `defer_over` (None: always sleep)."""
    if held is not None:
        wait = held - pacer.now()
        if defer_over is not None and wait > defer_over:
            return Slot(held, wait)
        if wait >= -LATE_FOR_SLOT:
            if wait > 0:
                sleep(wait)
            return None
    slot = pacer.reserve(gaps, rates, late_for=held)
    if defer_over is not None and slot.wait > defer_over:
        return slot
    if slot.wait > 0:
        sleep(slot.wait)
    return None
