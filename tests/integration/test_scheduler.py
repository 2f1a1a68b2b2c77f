"""Timers fire once: two schedulers, an emptied Redis, a timer lost before publication."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest
import redis
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Conversation, ConversationEvent
from reengage.domain.inactivity import inactivity_key
from reengage.domain.timer import ClaimedTimer
from reengage.runtime import Runtime
from reengage.timers.executors import InlineExecutor
from reengage.timers.memory_store import InMemoryTimerStore
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.scheduler import Scheduler
from tests.conftest import REDIS_URL
from tests.factories import make_bot, make_org, message


def scheduler_for(runtime: Runtime, **overrides: object) -> Scheduler:
    values: dict[str, object] = {
        "sessions": runtime.sessions,
        "store": runtime.timers,
        "executor": InlineExecutor(runtime),
        "registry": runtime.registry,
        "clock": runtime.clock,
        "batch": 50,
        "lease": timedelta(seconds=30),
    }
    values.update(overrides)
    return Scheduler(**values)  # type: ignore[arg-type]


def inactivity_events(runtime: Runtime) -> dict[int, int]:
    with runtime.sessions() as s:
        rows = s.execute(
            select(ConversationEvent.conversation_id, func.count())
            .where(ConversationEvent.kind == "inactivity_detected")
            .group_by(ConversationEvent.conversation_id)
        ).all()
    return {cid: n for cid, n in rows}


def seed(runtime: Runtime, clock: ManualClock, users: int) -> list[int]:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, f"u{i}", clock.now()) for i in range(users)])
    with runtime.sessions() as s:
        return list(s.scalars(select(Conversation.id)))


@pytest.mark.parametrize("store", ["sql", "redis"])
def test_two_schedulers_fire_each_timer_once(
    store: str,
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    request: pytest.FixtureRequest,
) -> None:
    timers = (
        RedisTimerStore(request.getfixturevalue("redis_client"), namespace="t")
        if store == "redis"
        else None
    )
    runtime = make_runtime(pg_db, timers=timers)
    conversations = seed(runtime, clock, 400)
    clock.advance(timedelta(minutes=10))
    schedulers = [scheduler_for(runtime) for _ in range(2)]

    def drain(s: Scheduler) -> None:
        while s.run_once():
            pass

    threads = [threading.Thread(target=drain, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inactivity_events(runtime) == {cid: 1 for cid in conversations}
    assert runtime.timers.count() == 0


def test_nothing_fires_before_its_time_and_activity_postpones_it(
    db_url: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    runtime = make_runtime(db_url)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, "u", clock.now())])
    scheduler = scheduler_for(runtime)
    clock.advance(timedelta(minutes=9))
    runtime.record(org.org_id, [message(bot, "u", clock.now())])
    clock.advance(timedelta(minutes=9))
    assert scheduler.run_once() == 0
    clock.advance(timedelta(minutes=1))
    assert scheduler.run_once() == 1
    assert list(inactivity_events(runtime).values()) == [1]


def test_a_timer_claimed_before_new_activity_does_nothing(
    db_url: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    runtime = make_runtime(db_url)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, "u", clock.now())])
    clock.advance(timedelta(minutes=10))
    claimed = runtime.timers.claim_due(clock.now(), 10, timedelta(seconds=30))
    runtime.record(org.org_id, [message(bot, "u", clock.now())])  # the user answers meanwhile
    InlineExecutor(runtime).submit(claimed, clock.now())
    assert inactivity_events(runtime) == {}
    assert runtime.timers.count() == 1  # the new timer survived the stale one's ack


def test_timers_survive_redis_being_emptied(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
) -> None:
    runtime = make_runtime(pg_db, timers=RedisTimerStore(redis_client, namespace="t"))
    scheduler = scheduler_for(runtime)
    scheduler.run_once()  # first start: marks the (empty) store as built
    conversations = seed(runtime, clock, 120)
    assert runtime.timers.count() == 120
    redis_client.flushdb()  # Redis restarted without persistence
    assert runtime.timers.count() == 0
    clock.advance(timedelta(minutes=10))
    while scheduler.run_once():
        pass
    assert inactivity_events(runtime) == {cid: 1 for cid in conversations}


def test_a_timer_lost_between_commit_and_publication_is_swept_back(
    db_url: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    # A process that died right after its commit published its timers nowhere.
    dying = make_runtime(db_url, timers=InMemoryTimerStore())
    conversations = seed(dying, clock, 5)
    runtime = make_runtime(db_url)
    assert runtime.timers.count() == 0
    scheduler = scheduler_for(runtime, sweep_interval=timedelta(seconds=30))
    clock.advance(timedelta(minutes=10, seconds=1))
    scheduler.run_once()  # overdue by less than the grace: not swept yet
    assert inactivity_events(runtime) == {}
    clock.advance(timedelta(seconds=30))
    while scheduler.run_once():
        pass
    assert inactivity_events(runtime) == {cid: 1 for cid in conversations}


def test_full_redis_mode_fires_once_and_survives_redis_being_emptied(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL)
    schedulers = [scheduler_for(runtime, activity=runtime.activity) for _ in range(2)]
    schedulers[0].run_once()
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, f"u{i}", clock.now()) for i in range(60)])
    clock.advance(timedelta(seconds=2))
    schedulers[0].run_once()  # flushes the hot activity to PostgreSQL
    redis_client.flushdb()  # Redis restarts without persistence
    clock.advance(timedelta(minutes=10))
    for s in schedulers:
        while s.run_once():
            pass
    with runtime.sessions() as session:
        conversations = list(session.scalars(select(Conversation.id)))
    assert len(conversations) == 60
    assert inactivity_events(runtime) == {cid: 1 for cid in conversations}


def test_a_user_who_wrote_after_the_claim_is_not_marked_inactive(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, "u", clock.now())])
    clock.advance(timedelta(minutes=10))
    claimed = runtime.timers.claim_due(clock.now(), 10, timedelta(seconds=30))
    runtime.record(org.org_id, [message(bot, "u", clock.now())])  # not yet in PostgreSQL
    InlineExecutor(runtime).submit(claimed, clock.now())
    assert inactivity_events(runtime) == {}
    timer = runtime.timers.get(inactivity_key(bot, "u"))
    assert timer is not None
    assert timer.version == 2


class Idle:
    """An executor whose workers never finish: what is claimed stays in flight."""

    def submit(self, claimed: Sequence[ClaimedTimer], now: datetime) -> None:
        return None


def test_the_backlog_gauges_show_what_waits_for_a_claim_once_a_second(
    db_url: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    runtime = make_runtime(db_url)
    seed(runtime, clock, 5)
    clock.advance(timedelta(minutes=11))
    scheduler = scheduler_for(runtime, executor=Idle(), batch=2)
    scheduler.run_once()  # 2 claimed and stuck with busy workers: 3 wait
    assert REGISTRY.get_sample_value("reengage_timers_due") == 3
    assert REGISTRY.get_sample_value("reengage_timers_oldest_due_age_seconds") == 60
    clock.advance(timedelta(minutes=1))
    scheduler.run_once()
    assert REGISTRY.get_sample_value("reengage_timers_oldest_due_age_seconds") == 60  # < 1 s
    scheduler._gauged = None  # a second later
    scheduler.run_once()
    assert REGISTRY.get_sample_value("reengage_timers_oldest_due_age_seconds") == 120


def test_the_write_behind_gauges_show_activity_not_yet_in_the_database(
    pg_db: str, make_runtime: Callable[..., Runtime], clock: ManualClock, redis_client: redis.Redis
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL)
    scheduler = scheduler_for(runtime, activity=runtime.activity)
    seed(runtime, clock, 3)
    scheduler.gauge(clock.now())  # before the first flush
    assert REGISTRY.get_sample_value("reengage_write_behind_pending") == 3
    assert (REGISTRY.get_sample_value("reengage_write_behind_lag_seconds") or 0) > 0
    scheduler._gauged = None
    scheduler.run_once()  # flushes, then looks again
    assert REGISTRY.get_sample_value("reengage_write_behind_pending") == 0
    assert REGISTRY.get_sample_value("reengage_write_behind_lag_seconds") == 0
