"""Timers over several shards (Redis Cluster): each timer lives in the shard of its key, and
each shard is a whole timer store of its own (its scripts touch its one slot).

Claims go round the shards fairly: each round starts at the next shard and offers every shard
an equal share of the batch, then the room the others left to those that filled theirs, so a
shard with a deep backlog never starves the rest. A shard that fails is left alone for a
capped backoff (logged once when it goes, once when it is back): its timers wait, the other
shards' run on time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from reengage.adapters.outage import Backoff, one_line
from reengage.adapters.redis.shards import timer_shard
from reengage.domain.timer import Backlog, ClaimedTimer, Timer
from reengage.ports import TimerStore, Wakeups

log = structlog.get_logger(__name__)

T = TypeVar("T")

# After a shard's failure it is left alone this long (seconds), doubling up to the cap.
SHARD_BACKOFF_FIRST = 0.1
SHARD_BACKOFF_CAP = 5.0


class ShardHealth:
    """When a failed shard may be asked again."""

    def __init__(
        self, index: int, now: Callable[[], float] = time.monotonic, *, store: str = "timers"
    ) -> None:
        self.index = index
        self.store = store
        self._now = now
        self._backoff = Backoff(SHARD_BACKOFF_FIRST, SHARD_BACKOFF_CAP)
        self._retry_at = 0.0

    @property
    def down(self) -> bool:
        return self._backoff.failures > 0

    def ready(self) -> bool:
        return self._now() >= self._retry_at

    def failed(self, exc: BaseException) -> None:
        if not self.down:
            log.warning("redis.shard_down", store=self.store, shard=self.index, error=one_line(exc))
        self._retry_at = self._now() + self._backoff.next_wait()

    def succeeded(self) -> None:
        if self.down:
            log.warning("redis.shard_back", store=self.store, shard=self.index)
            self._backoff.reset()
        self._retry_at = 0.0


class ShardedTimerStore:
    """One timer store per shard, routed by key (`timer_shard`)."""

    def __init__(self, shards: Sequence[TimerStore], now: Callable[[], float] = time.monotonic):
        if not shards:
            raise ValueError("a sharded store needs at least one shard")
        self.shards = list(shards)
        self._health = [ShardHealth(i, now) for i in range(len(shards))]
        self._next = 0
        self._lock = threading.Lock()
        # The shards are asked at once: a round costs one round trip, not one per shard.
        self._pool = ThreadPoolExecutor(len(self.shards), thread_name_prefix="timer-shard")

    def shard_of(self, key: str) -> int:
        return timer_shard(key, len(self.shards))

    def _grouped(self, keys: Sequence[T], key: Callable[[T], str]) -> dict[int, list[T]]:
        groups: dict[int, list[T]] = {}
        for item in keys:
            groups.setdefault(self.shard_of(key(item)), []).append(item)
        return groups

    def _each(self, groups: dict[int, list[T]], call: Callable[[TimerStore, list[T]], int]) -> int:
        """Call every shard with its group; a failing shard does not keep the others from
        theirs, and its error is raised once they are done (the caller's work is not done)."""
        total, error = 0, None
        for index, items in groups.items():
            try:
                total += call(self.shards[index], items)
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error
        return total

    def _reachable(self, call: Callable[[TimerStore], T]) -> list[T]:
        """Ask every shard not backing off; the failing ones are left out (all failing: raise)."""
        out: list[T] = []
        error: BaseException | None = None
        live = [h for h in self._health if h.ready()]
        futures = [self._pool.submit(call, self.shards[h.index]) for h in live]
        for health, future in zip(live, futures, strict=True):
            try:
                out.append(future.result())
            except Exception as exc:
                health.failed(exc)
                error = exc
            else:
                health.succeeded()
        if not out and error is not None:
            raise error
        return out

    def schedule(self, timers: Sequence[Timer]) -> None:
        def write(shard: TimerStore, items: list[Timer]) -> int:
            shard.schedule(items)
            return 0

        self._each(self._grouped(timers, lambda t: t.key), write)

    def schedule_missing(self, timers: Sequence[Timer]) -> int:
        """Rebuilds and sweeps: a shard that is down is left out (the next sweep, or its own
        rebuild when it comes back empty, brings its timers), so it holds back no other."""
        added = 0
        for index, items in self._grouped(timers, lambda t: t.key).items():
            health = self._health[index]
            if not health.ready():
                continue
            try:
                added += self.shards[index].schedule_missing(items)
            except Exception as exc:
                health.failed(exc)
            else:
                health.succeeded()
        return added

    def cancel(self, keys: Sequence[str]) -> None:
        def drop(shard: TimerStore, items: list[str]) -> int:
            shard.cancel(items)
            return 0

        self._each(self._grouped(keys, lambda k: k), drop)

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[ClaimedTimer]:
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.shards)
        order = [self._health[(start + i) % len(self.shards)] for i in range(len(self.shards))]
        live = [h for h in order if h.ready()]
        claimed: list[ClaimedTimer] = []
        if not live or limit <= 0:  # every shard backing off: nothing to ask this round
            return claimed
        # Equal shares (of a batch smaller than the shards: one each, in turn), all at once.
        shares = [limit // len(live) + (i < limit % len(live)) for i in range(len(live))]
        asked = [(h, share) for h, share in zip(live, shares, strict=True) if share]
        futures = [self._pool.submit(self._claim, h, now, share, lease) for h, share in asked]
        drained: set[int] = set()
        for (health, share), future in zip(asked, futures, strict=True):
            got = future.result()
            claimed += got
            if len(got) < share:
                drained.add(health.index)
        # The room left, to those that may have more: filled their share, or had none.
        for health in live:
            if (room := limit - len(claimed)) <= 0:
                break
            if health.index not in drained:
                claimed += self._claim(health, now, room, lease)
        return sorted(claimed, key=lambda c: c.timer.due_at)

    def _claim(
        self, health: ShardHealth, now: datetime, limit: int, lease: timedelta
    ) -> list[ClaimedTimer]:
        try:
            got = self.shards[health.index].claim_due(now, limit, lease)
        except Exception as exc:
            health.failed(exc)
            return []
        health.succeeded()
        return got

    def ack(self, claimed: Sequence[ClaimedTimer]) -> int:
        return self._each(self._grouped(claimed, lambda c: c.timer.key), lambda s, i: s.ack(i))

    def get(self, key: str) -> Timer | None:
        return self.shards[self.shard_of(key)].get(key)

    def count(self) -> int:
        return sum(shard.count() for shard in self.shards)

    def next_due(self) -> datetime | None:
        dues = [d for d in self._reachable(lambda s: s.next_due()) if d is not None]
        return min(dues) if dues else None

    def in_flight(self, now: datetime) -> int:
        return sum(self._reachable(lambda s: s.in_flight(now)))

    def backlog(self, now: datetime) -> Backlog:
        parts = self._reachable(lambda s: s.backlog(now))
        oldest = [b.oldest for b in parts if b.oldest is not None]
        return Backlog(sum(b.due for b in parts), min(oldest) if oldest else None)

    def wakeups(self) -> Wakeups:
        # Every shard publishes on the one channel, and a cluster delivers a publication on
        # any node to every node's subscribers: one subscription hears them all.
        return SparedWakeups(self.shards[0].wakeups)

    def needs_rebuild(self) -> bool:
        return any(self._reachable(lambda s: s.needs_rebuild()))

    def mark_rebuilt(self) -> None:
        self._reachable(lambda s: s.mark_rebuilt())


# While the wake-up subscription is lost, how often it is tried again (seconds).
RESUBSCRIBE = 1.0


class SparedWakeups:
    """The wake-up subscription, which lives on one node: while that node is down (a failover)
    the scheduler polls instead (`complete` is False) rather than fail its rounds and back off,
    which would hold back every shard's timers; it subscribes again once it can."""

    def __init__(self, subscribe: Callable[[], Wakeups]) -> None:
        self._subscribe = subscribe
        self._inner: Wakeups | None = None
        self._retry_at = 0.0
        self._connect()

    def _connect(self) -> None:
        if self._inner is not None or time.monotonic() < self._retry_at:
            return
        try:
            self._inner = self._subscribe()
        except Exception as exc:
            self._lost(exc)

    def _lost(self, exc: BaseException) -> None:
        if self._inner is not None:
            with contextlib.suppress(Exception):
                self._inner.close()
        self._inner = None
        self._retry_at = time.monotonic() + RESUBSCRIBE
        log.warning("timers.wakeups_lost", error=one_line(exc))

    @property
    def complete(self) -> bool:
        return self._inner is not None and self._inner.complete

    def arm(self) -> None:
        self._connect()
        if self._inner is not None:
            try:
                self._inner.arm()
            except Exception as exc:
                self._lost(exc)

    def wait(self, until: datetime, seconds: float) -> bool:
        if self._inner is None:
            time.sleep(max(0.0, seconds))  # the scheduler caps it at its poll interval
            return False
        try:
            return self._inner.wait(until, seconds)
        except Exception as exc:
            self._lost(exc)
            return True  # a wake-up may have been missed: look now

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
