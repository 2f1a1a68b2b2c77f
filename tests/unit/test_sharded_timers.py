"""The hot state over logical shards: routing, fair claims, a shard that is down."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import redis
from pydantic import ValidationError
from sqlalchemy.orm import sessionmaker

from reengage.adapters.redis.sharded_activity import ShardedActivityStore
from reengage.adapters.redis.shards import Layout, shard_of, shard_tag, timer_shard
from reengage.config import Settings
from reengage.domain.timer import ClaimedTimer, Timer
from reengage.ports import TimerStore
from reengage.timers.memory_store import InMemoryTimerStore
from reengage.timers.sharded_store import ShardedTimerStore, SparedWakeups

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


class Seconds:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.at = 0.0

    def __call__(self) -> float:
        return self.at


class Down(InMemoryTimerStore):
    """A shard whose every call fails while `down` (its node is away)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[ClaimedTimer]:
        self.calls += 1
        if self.down:
            raise redis.ConnectionError("Connection refused")
        return super().claim_due(now, limit, lease)

    def next_due(self) -> datetime | None:
        if self.down:
            raise redis.ConnectionError("Connection refused")
        return super().next_due()

    def schedule(self, timers: Sequence[Timer]) -> None:
        if self.down:
            raise redis.ConnectionError("Connection refused")
        super().schedule(timers)


def keys_of(store: ShardedTimerStore, shard: int, n: int) -> list[str]:
    """`n` timer keys that live in `shard`."""
    out: list[str] = []
    i = 0
    while len(out) < n:
        key = f"inactivity:1:{i}"
        if store.shard_of(key) == shard:
            out.append(key)
        i += 1
    return out


def due(keys: list[str], minutes: float = 0) -> list[Timer]:
    return [Timer(k, "inactivity", T0 + timedelta(minutes=minutes), 1, {}) for k in keys]


@pytest.mark.parametrize(
    ("subject", "count", "shard"), [("1:alice", 1, 0), ("1:alice", 3, 1), ("7:42", 16, 5)]
)
def test_a_subject_maps_to_one_shard_by_crc32(subject: str, count: int, shard: int) -> None:
    assert shard_of(subject, count) == shard
    assert timer_shard(f"inactivity:{subject}", count) == shard  # its timer sits with it


def test_one_shard_on_one_redis_keeps_the_single_instance_names() -> None:
    assert Layout().tags() == [None]
    assert Layout(count=1, cluster=True).tags() == ["reengage:s0"]


@pytest.mark.parametrize("count", [3, 8, 16])
def test_shard_tags_spread_evenly_over_the_slot_space(count: int) -> None:
    from redis.crc import key_slot

    slots = [key_slot(f"{{{shard_tag('reengage', i, count)}}}".encode()) for i in range(count)]
    assert [slot * count // 16384 for slot in slots] == list(range(count))


def test_a_deep_backlog_on_one_shard_starves_no_other() -> None:
    store = ShardedTimerStore([InMemoryTimerStore() for _ in range(3)])
    store.schedule(due(keys_of(store, 0, 1000), -60))  # an hour's backlog, all older
    store.schedule(due(keys_of(store, 1, 5)) + due(keys_of(store, 2, 5)))
    claimed = store.claim_due(T0, 100, LEASE)
    shards = [store.shard_of(c.timer.key) for c in claimed]
    assert len(claimed) == 100
    assert (shards.count(1), shards.count(2)) == (5, 5)  # all of theirs, in the first round
    assert shards.count(0) == 90  # and the room they left to the deep one


def test_small_batches_go_round_the_shards() -> None:
    store = ShardedTimerStore([InMemoryTimerStore() for _ in range(3)])
    for shard in range(3):
        store.schedule(due(keys_of(store, shard, 10)))
    firsts = [store.shard_of(store.claim_due(T0, 1, LEASE)[0].timer.key) for _ in range(6)]
    assert sorted(firsts) == [0, 0, 1, 1, 2, 2]


def test_a_shard_that_is_down_delays_only_its_own_timers() -> None:
    seconds = Seconds()
    broken = Down()
    shards: list[TimerStore] = [InMemoryTimerStore(), broken, InMemoryTimerStore()]
    store = ShardedTimerStore(shards, now=seconds)
    for shard in range(3):
        store.schedule(due(keys_of(store, shard, 4)))
    broken.down = True
    claimed = store.claim_due(T0, 100, LEASE)
    assert sorted({store.shard_of(c.timer.key) for c in claimed}) == [0, 2]
    assert len(claimed) == 8
    assert store.next_due() == T0 + LEASE  # the reachable shards: their leases end
    calls = broken.calls
    store.claim_due(T0, 100, LEASE)
    assert broken.calls == calls  # backing off: the others' claims do not wait for it
    with pytest.raises(redis.ConnectionError):  # a write for it says it did not happen
        store.schedule(due(keys_of(store, 1, 5)[4:], 5) + due(keys_of(store, 0, 5)[4:], 5))
    assert store.count() == 12 + 1  # the other shard's timer is written all the same
    broken.down = False
    seconds.at += 10  # past the backoff: asked again, its timers come
    back = store.claim_due(T0, 100, LEASE)
    assert {store.shard_of(c.timer.key) for c in back} == {1}
    assert len(back) == 4


class Upkeep:
    """One activity shard's upkeep: `n` subjects to write, or down."""

    def __init__(self, n: int, down: bool = False) -> None:
        self.n, self.down = n, down

    def flush(self, now: datetime, limit: int = 2000) -> int:
        if self.down:
            raise redis.ConnectionError("Connection refused")
        return self.n

    def unflushed(self) -> int:
        return self.flush(T0)


def test_the_activity_upkeep_goes_on_without_a_shard_that_is_down() -> None:
    shards = [Upkeep(2), Upkeep(3, down=True), Upkeep(4)]
    store = ShardedActivityStore(shards, sessionmaker())  # type: ignore[arg-type]
    assert store.flush(T0) == 6
    assert store.unflushed() == 6  # backing off: not even asked
    every = ShardedActivityStore([Upkeep(1, down=True)], sessionmaker())  # type: ignore[list-item]
    with pytest.raises(redis.ConnectionError):  # nothing answers: the round fails
        every.flush(T0)


@pytest.mark.parametrize(
    ("values", "count"),
    [({}, 1), ({"redis_cluster": True}, 12), ({"redis_cluster": True, "redis_shards": 3}, 3)],
)
def test_the_number_of_shards_defaults_by_mode(values: dict[str, object], count: int) -> None:
    assert Settings(**values).redis_shard_count == count  # type: ignore[arg-type]


def test_a_number_of_shards_below_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="redis_shards"):
        Settings(redis_shards=0)


class Subscription:
    """A wake-up subscription on a node that may go down."""

    def __init__(self, node: dict[str, bool]) -> None:
        if node["down"]:
            raise redis.ConnectionError("Connection refused")
        self.node = node
        self.closed = False

    @property
    def complete(self) -> bool:
        return True

    def arm(self) -> None:
        if self.node["down"]:
            raise redis.ConnectionError("Connection reset by peer")

    def wait(self, until: datetime, seconds: float) -> bool:
        if self.node["down"]:
            raise redis.ConnectionError("Connection reset by peer")
        return False

    def close(self) -> None:
        self.closed = True


def test_a_lost_wakeup_subscription_makes_the_scheduler_poll_not_fail() -> None:
    node = {"down": False}
    wakeups = SparedWakeups(lambda: Subscription(node))
    wakeups.arm()
    assert wakeups.complete
    assert not wakeups.wait(T0, 0.0)
    node["down"] = True  # the channel's node fails over
    assert wakeups.wait(T0, 0.0)  # no exception: look now, a wake-up may have been missed
    wakeups.arm()
    assert not wakeups.complete  # the scheduler polls meanwhile
    assert not wakeups.wait(T0, 0.0)
    node["down"] = False
    wakeups.arm()
    assert not wakeups.complete  # tried again after a while, not at every round
    wakeups._retry_at = 0.0
    wakeups.arm()
    assert wakeups.complete


def test_with_every_shard_backing_off_a_claim_finds_nothing_and_fails_nothing() -> None:
    seconds = Seconds()
    shards = [Down(), Down()]
    store = ShardedTimerStore(shards, now=seconds)
    store.schedule(due(keys_of(store, 0, 1)) + due(keys_of(store, 1, 1)))
    for shard in shards:
        shard.down = True
    assert store.claim_due(T0, 10, LEASE) == []  # both fail, and back off
    assert store.claim_due(T0, 10, LEASE) == []  # neither is asked
    for shard in shards:
        shard.down = False
    seconds.at += 10
    assert len(store.claim_due(T0, 10, LEASE)) == 2
