"""Timers fire once: two schedulers, an emptied Redis, a timer lost before publication."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Conversation, ConversationEvent
from reengage.domain.inactivity import inactivity_key
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
