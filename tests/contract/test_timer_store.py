"""One suite, every timer store: memory, SQLite, PostgreSQL, Redis."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from reengage.adapters.db.session import make_engine, make_session_factory
from reengage.adapters.redis.shards import Layout, SyncClient
from reengage.domain.timer import Backlog, Timer
from reengage.ports import TimerStore
from reengage.timers.memory_store import InMemoryTimerStore
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.sharded_store import ShardedTimerStore
from reengage.timers.sql_store import SqlTimerStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
# `redis-sharded`: four logical shards on one Redis; `cluster`: three on a Redis Cluster.
STORES = ["memory", "sqlite", "postgresql", "redis", "redis-sharded", "cluster"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Iterator[TimerStore]:
    kind = request.param
    if kind == "memory":
        yield InMemoryTimerStore()
    elif kind == "redis":
        yield RedisTimerStore(request.getfixturevalue("redis_client"), namespace=_namespace())
    elif kind == "redis-sharded":
        yield sharded(request.getfixturevalue("redis_client"), 4, _namespace())
    elif kind == "cluster":
        yield sharded(request.getfixturevalue("cluster_client"), 3, _namespace())
    else:
        url = request.getfixturevalue("pg_db" if kind == "postgresql" else "db_url_sqlite")
        engine = make_engine(url)
        yield SqlTimerStore(make_session_factory(engine))
        engine.dispose()


def _namespace() -> str:
    """A namespace of the test's own: its wake channel too, so that a publication of an
    earlier test, still crossing a cluster's bus, reaches no one here."""
    return f"contract-{uuid.uuid4().hex[:8]}"


def sharded(client: SyncClient, count: int, namespace: str = "contract") -> ShardedTimerStore:
    layout = Layout(namespace, count, cluster=True)
    return ShardedTimerStore([RedisTimerStore(client, namespace, t) for t in layout.tags()])


@pytest.fixture
def db_url_sqlite(request: pytest.FixtureRequest, tmp_path: object) -> str:
    import shutil
    from pathlib import Path

    path = Path(str(tmp_path)) / "timers.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


def timer(key: str, minutes: float = 0, version: int = 1, **payload: int) -> Timer:
    return Timer(key, "inactivity", T0 + timedelta(minutes=minutes), version, dict(payload))


def test_schedule_replaces_the_timer_of_a_key(store: TimerStore) -> None:
    store.schedule([timer("a", 10, version=1)])
    store.schedule([timer("a", 20, version=2, seq=2)])
    assert store.count() == 1
    got = store.get("a")
    assert got is not None
    assert (got.due_at, got.version, got.payload) == (T0 + timedelta(minutes=20), 2, {"seq": 2})


def test_an_older_version_never_replaces_a_newer_one(store: TimerStore) -> None:
    store.schedule([timer("a", 20, version=5)])
    store.schedule([timer("a", 10, version=4)])
    got = store.get("a")
    assert got is not None
    assert got.version == 5


def test_many_writes_to_one_key_leave_one_timer(store: TimerStore) -> None:
    store.schedule([timer("subject", i, version=i) for i in range(300)])
    for i in range(300, 350):
        store.schedule([timer("subject", i, version=i)])
    assert store.count() == 1
    got = store.get("subject")
    assert got is not None
    assert got.version == 349


def test_claim_returns_only_due_timers_in_due_order(store: TimerStore) -> None:
    store.schedule([timer("late", 5), timer("early", 1), timer("future", 60)])
    claimed = store.claim_due(T0 + timedelta(minutes=5), 10, LEASE)
    assert [c.timer.key for c in claimed] == ["early", "late"]
    assert all(c.attempts == 1 for c in claimed)
    assert store.claim_due(T0 + timedelta(minutes=5), 10, LEASE) == []


def test_claim_respects_the_limit(store: TimerStore) -> None:
    store.schedule([timer(f"k{i}", 0) for i in range(7)])
    assert len(store.claim_due(T0, 5, LEASE)) == 5
    assert len(store.claim_due(T0, 5, LEASE)) == 2


def test_an_unacked_claim_comes_back_after_its_lease(store: TimerStore) -> None:
    store.schedule([timer("a", 0)])
    first = store.claim_due(T0, 10, LEASE)
    assert store.claim_due(T0 + LEASE - timedelta(seconds=1), 10, LEASE) == []
    again = store.claim_due(T0 + LEASE, 10, LEASE)
    assert [c.timer.key for c in again] == ["a"]
    assert again[0].attempts == 2
    assert again[0].token == first[0].token
    assert again[0].timer.due_at == T0


def test_ack_removes_the_claimed_timer(store: TimerStore) -> None:
    store.schedule([timer("a", 0), timer("b", 0)])
    claimed = store.claim_due(T0, 10, LEASE)
    assert store.ack(claimed) == 2
    assert store.count() == 0
    assert store.claim_due(T0 + LEASE * 2, 10, LEASE) == []


def test_ack_keeps_a_timer_rescheduled_while_claimed(store: TimerStore) -> None:
    store.schedule([timer("a", 0, version=1)])
    claimed = store.claim_due(T0, 10, LEASE)
    store.schedule([timer("a", 10, version=2)])
    assert store.ack(claimed) == 0
    got = store.get("a")
    assert got is not None
    assert got.version == 2
    assert [c.timer.version for c in store.claim_due(T0 + timedelta(minutes=10), 10, LEASE)] == [2]


def test_schedule_missing_never_replaces(store: TimerStore) -> None:
    store.schedule([timer("a", 10, version=9)])
    added = store.schedule_missing([timer("a", 1, version=1), timer("b", 1, version=1)])
    assert added == 1
    a = store.get("a")
    assert a is not None
    assert a.version == 9
    assert store.count() == 2


def test_cancel_and_next_due(store: TimerStore) -> None:
    assert store.next_due() is None
    store.schedule([timer("a", 10), timer("b", 3)])
    assert store.next_due() == T0 + timedelta(minutes=3)
    store.cancel(["b", "missing"])
    assert store.get("b") is None
    assert store.next_due() == T0 + timedelta(minutes=10)


def test_concurrent_claims_never_hand_a_timer_twice(store: TimerStore) -> None:
    store.schedule([timer(f"k{i}", 0) for i in range(600)])
    seen: list[str] = []
    lock = threading.Lock()

    def claimer() -> None:
        while batch := store.claim_due(T0, 25, LEASE):
            with lock:
                seen.extend(c.timer.key for c in batch)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == sorted(f"k{i}" for i in range(600))


def test_payload_round_trips(store: TimerStore) -> None:
    store.schedule([Timer("p|x", "recovery_step", T0, 3, {"a": 1, "b": "x|y", "c": None})])
    [claimed] = store.claim_due(T0, 1, LEASE)
    assert claimed.timer == Timer("p|x", "recovery_step", T0, 3, {"a": 1, "b": "x|y", "c": None})


def test_redis_store_notices_it_was_emptied(redis_client: redis.Redis) -> None:
    store = RedisTimerStore(redis_client, namespace="contract")
    assert store.needs_rebuild()
    store.mark_rebuilt()
    store.schedule([timer("a", 0)])
    assert not store.needs_rebuild()
    redis_client.flushdb()
    assert store.needs_rebuild()
    assert store.count() == 0


_: Callable[..., object] = timer


def test_in_flight_counts_the_claims_not_yet_acked_nor_expired(store: TimerStore) -> None:
    store.schedule([timer(k, 0) for k in "abcd"] + [timer("later", 60)])
    claimed = store.claim_due(T0, 10, LEASE)
    assert (len(claimed), store.in_flight(T0)) == (4, 4)
    store.ack(claimed[:1])
    store.schedule([timer(claimed[1].timer.key, 30, version=2)])  # rescheduled: settled
    store.cancel([claimed[2].timer.key])
    assert store.in_flight(T0) == 1
    assert store.in_flight(T0 + LEASE) == 0  # its lease ran out: it is due again, not in flight
    again = store.claim_due(T0 + LEASE, 10, LEASE)
    assert [c.timer.key for c in again] == [claimed[3].timer.key]
    # Claimed again (its executor died, or nobody consumes its queue): not counted, so it
    # cannot hold back the claims of other work.
    assert store.in_flight(T0 + LEASE) == 0
    store.schedule([timer("new", 0)])
    store.claim_due(T0 + LEASE, 10, LEASE)
    assert store.in_flight(T0 + LEASE) == 1


def test_a_sleeping_scheduler_hears_of_an_earlier_timer_only(store: TimerStore) -> None:
    wakeups = store.wakeups()
    try:
        store.schedule([timer("head", 10)])
        # Heard by a scheduler that slept towards later (on a cluster it may come a moment
        # after, over the bus from another node): it cannot arrive once the scheduler arms.
        assert wakeups.wait(T0 + timedelta(minutes=11), 2.0)
        wakeups.arm()  # now it sleeps towards "head"
        store.schedule([timer("after", 20)])
        assert not wakeups.wait(T0 + timedelta(minutes=10), 0.05)
        store.schedule([timer("sooner", 5)])
        assert wakeups.wait(T0 + timedelta(minutes=10), 2.0)
        wakeups.arm()  # what came before arming is forgotten
        assert not wakeups.wait(T0 + timedelta(minutes=10), 0.05)
    finally:
        wakeups.close()


def test_a_wakeup_comes_while_the_scheduler_waits(store: TimerStore) -> None:
    wakeups = store.wakeups()
    try:
        wakeups.arm()
        writer = threading.Timer(0.1, lambda: store.schedule([timer("now", 0)]))
        writer.start()
        started = datetime.now(UTC)
        assert wakeups.wait(T0 + timedelta(minutes=1), 5.0)
        assert datetime.now(UTC) - started < timedelta(seconds=2)
        writer.join()
    finally:
        wakeups.close()


def test_backlog_counts_the_claimable_timers_and_dates_the_oldest(store: TimerStore) -> None:
    assert store.backlog(T0) == Backlog(0, None)
    store.schedule([timer("old", -3), timer("a", -1), timer("b", 0), timer("later", 10)])
    backlog = store.backlog(T0)
    assert backlog == Backlog(3, T0 - timedelta(minutes=3))
    assert backlog.oldest_age(T0) == 180
    claimed = store.claim_due(T0, 2, LEASE)
    dues = {"old": T0 - timedelta(minutes=3), "a": T0 - timedelta(minutes=1), "b": T0}
    [left] = set(dues) - {c.timer.key for c in claimed}
    # One store claims the earliest first; shards each claim their share, so any may be left.
    assert left == "b" or isinstance(store, ShardedTimerStore)
    assert store.backlog(T0) == Backlog(1, dues[left])  # claimed ones wait for no claim
    # A lease that ran out makes its timer claimable again: it waits from the lease's end.
    store.ack([c for c in claimed if c.timer.key == "old"])
    again = [c for c in claimed if c.timer.key != "old"]
    assert store.backlog(T0 + LEASE) == Backlog(1 + len(again), min(dues[left], T0 + LEASE))
    assert store.backlog(T0 + timedelta(minutes=10)).due == 3


def test_a_timer_is_claimed_from_its_due_millisecond_not_before(store: TimerStore) -> None:
    # Keys of every spread a Redis score gives (the fraction of a millisecond from the key).
    keys = [f"inactivity:7:{n}" for n in range(40)]
    store.schedule([Timer(k, "inactivity", T0, 1, {}) for k in keys])
    assert store.claim_due(T0 - timedelta(milliseconds=1), 100, LEASE) == []
    assert store.backlog(T0 - timedelta(milliseconds=1)).due == 0
    assert store.backlog(T0).due == 40
    assert sorted(c.timer.key for c in store.claim_due(T0, 100, LEASE)) == sorted(keys)


@pytest.mark.parametrize("store", ["redis", "redis-sharded", "cluster"], indirect=True)
def test_timers_due_together_are_claimed_across_their_keys_not_in_key_order(
    store: TimerStore,
) -> None:
    """The 09:00 herd: thousands of silences due at one instant. Claimed in key order, a
    batch would hold one bot's (`inactivity:<bot>:<user>`) and its platform rate would bound
    the drain; claimed spread, a batch holds many bots'."""
    bots, users = 20, 50
    store.schedule(
        [
            Timer(f"inactivity:{b}:{u}", "inactivity", T0, 1, {"bot_id": b})
            for b in range(bots)
            for u in range(users)
        ]
    )
    first = store.claim_due(T0, users, LEASE)
    assert len({c.timer.payload["bot_id"] for c in first}) >= bots // 2
    rest = store.claim_due(T0, bots * users, LEASE)
    assert len(first) + len(rest) == bots * users
