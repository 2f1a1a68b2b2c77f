"""The hot activity state over several shards (Redis Cluster): each subject lives in one
shard (`shards.shard_of`), beside its inactivity timer, so every script touches one slot.

A batch of events for subjects of several shards is checked on every shard it touches before
any is applied (a stale view of the organization applies nothing), then recorded shard by
shard. The scheduler's upkeep (flush, expiry, restore) goes over every shard; a shard that
fails is left alone for a capped backoff, so the others' activity is still written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import redis.asyncio
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.redis.activity_store import RedisActivityStore, write_clocks
from reengage.adapters.redis.shards import Layout, SyncClient, shard_of
from reengage.domain.activity import ActivityEvent, BotPolicy, RecordResult, subject_key
from reengage.ports import ConfigStamp
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.sharded_store import ShardedTimerStore, ShardHealth

T = TypeVar("T")


class ShardedActivityStore:
    def __init__(
        self, shards: Sequence[RedisActivityStore], sessions: sessionmaker[Session]
    ) -> None:
        self.shards = list(shards)
        self._sessions = sessions
        self._count = len(shards)
        self._health = [ShardHealth(i, store="activity") for i in range(len(shards))]

    def _index(self, bot_id: int, user_id: str) -> int:
        return shard_of(subject_key(bot_id, user_id), self._count)

    def _of(self, bot_id: int, user_id: str) -> RedisActivityStore:
        return self.shards[self._index(bot_id, user_id)]

    def _groups(self, events: Sequence[ActivityEvent]) -> dict[int, list[ActivityEvent]]:
        groups: dict[int, list[ActivityEvent]] = {}
        for event in events:
            groups.setdefault(self._index(event.bot_id, event.user_id), []).append(event)
        return groups

    def record(
        self,
        org_id: int,
        policies: Mapping[int, BotPolicy],
        events: Sequence[ActivityEvent],
        now: datetime,
        stamp: ConfigStamp | None = None,
    ) -> RecordResult:
        groups = self._groups(events)
        if len(groups) == 1:
            [(index, only)] = groups.items()
            return self.shards[index].record(org_id, policies, only, now, stamp)
        for index, group in groups.items():
            subjects = list(dict.fromkeys(subject_key(e.bot_id, e.user_id) for e in group))
            self.shards[index].check(org_id, stamp, subjects, now)
        accepted = sum(
            self.shards[index].record(org_id, policies, group, now).accepted
            for index, group in groups.items()
        )
        return RecordResult(accepted, len(events) - accepted)

    async def record_on_loop(
        self,
        client: redis.asyncio.Redis,
        org_id: int,
        policies: Mapping[int, BotPolicy],
        events: Sequence[ActivityEvent],
        stamp: ConfigStamp | None,
        now: datetime,
    ) -> RecordResult | None:
        """A batch of one shard's subjects in one script call; any other: None (`record`)."""
        groups = self._groups(events)
        if len(groups) != 1:
            return None
        [index] = groups
        return await self.shards[index].record_on_loop(client, org_id, policies, events, stamp, now)

    def _each(self, call: Callable[[RedisActivityStore], T]) -> list[T]:
        """Every shard not backing off; a failing one is left out (all failing: raise)."""
        out: list[T] = []
        error: BaseException | None = None
        for health in self._health:
            if not health.ready():
                continue
            try:
                out.append(call(self.shards[health.index]))
            except Exception as exc:
                health.failed(exc)
                error = exc
            else:
                health.succeeded()
        if not out and error is not None:
            raise error
        return out

    def restore(self, now: datetime, limit: int = 2000) -> bool:
        done = self._each(lambda s: s.restore(now, limit))
        return len(done) == self._count and all(done)

    def hot_seq(self, bot_id: int, user_id: str) -> int | None:
        return self._of(bot_id, user_id).hot_seq(bot_id, user_id)

    def flush(self, now: datetime, limit: int = 2000) -> int:
        return sum(self._each(lambda s: s.flush(now, limit)))

    def unflushed(self) -> int:
        return sum(self._each(lambda s: s.unflushed()))

    def expire_idle(self, now: datetime, limit: int = 2000) -> int:
        return sum(self._each(lambda s: s.expire_idle(now, limit)))

    def flush_subject(self, bot_id: int, user_id: str, now: datetime) -> None:
        self._of(bot_id, user_id).flush_subject(bot_id, user_id, now)

    def hot_seqs(self, subjects: Sequence[tuple[int, str]]) -> list[int | None]:
        out: list[int | None] = [None] * len(subjects)
        groups: dict[int, list[int]] = {}
        for position, (bot_id, user_id) in enumerate(subjects):
            groups.setdefault(self._index(bot_id, user_id), []).append(position)
        for index, positions in groups.items():
            seqs = self.shards[index].hot_seqs([subjects[p] for p in positions])
            for position, seq in zip(positions, seqs, strict=True):
                out[position] = seq
        return out

    def flush_subjects(self, subjects: Sequence[tuple[int, str]], now: datetime) -> None:
        groups: dict[int, list[tuple[int, str]]] = {}
        for bot_id, user_id in subjects:
            groups.setdefault(self._index(bot_id, user_id), []).append((bot_id, user_id))
        # One transaction for all of them, whatever their shards.
        taken = {index: self.shards[index].take_subjects(g, now) for index, g in groups.items()}
        write_clocks(self._sessions, {k: v for t in taken.values() for k, v in t.items()}, now)
        for index, written in taken.items():
            if written:
                self.shards[index].settle(list(written), now)

    def change_status(
        self, bot_id: int, user_id: str, expected_seq: int, status: str, now: datetime
    ) -> bool:
        return self._of(bot_id, user_id).change_status(bot_id, user_id, expected_seq, status, now)

    def forget(self) -> None:
        """Drop all hot state (tests: a Redis restart without persistence)."""
        for shard in self.shards:
            shard.forget()


HotActivity = RedisActivityStore | ShardedActivityStore


def redis_timers(client: SyncClient, layout: Layout) -> RedisTimerStore | ShardedTimerStore:
    """The timer store of a layout: today's single store, or one per shard."""
    if layout.legacy:
        return RedisTimerStore(client, layout.namespace)
    return ShardedTimerStore(
        [RedisTimerStore(client, layout.namespace, tag) for tag in layout.tags()]
    )


def redis_activity(
    client: SyncClient,
    timers: RedisTimerStore | ShardedTimerStore,
    sessions: sessionmaker[Session],
    layout: Layout,
    *,
    dedup_per_subject: int,
    idle: timedelta,
) -> HotActivity:
    """The activity store beside `timers` (`redis_timers` of the same layout): each shard's
    activity with that shard's timers, under its hash tag."""
    if isinstance(timers, RedisTimerStore):
        return RedisActivityStore(
            client, timers, sessions, namespace=layout.namespace,
            dedup_per_subject=dedup_per_subject, idle=idle,
        )  # fmt: skip
    shards: list[RedisActivityStore] = []
    for index, (tag, shard) in enumerate(zip(layout.tags(), timers.shards, strict=True)):
        assert isinstance(shard, RedisTimerStore)
        shards.append(
            RedisActivityStore(
                client,
                shard,
                sessions,
                namespace=layout.namespace,
                tag=tag,
                owns=_owner(layout, index),
                dedup_per_subject=dedup_per_subject,
                idle=idle,
            )
        )
    return ShardedActivityStore(shards, sessions)


def _owner(layout: Layout, index: int) -> Callable[[str], bool]:
    return lambda subject: layout.of_subject(subject) == index
