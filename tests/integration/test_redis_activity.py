"""The Redis activity store: write-behind to PostgreSQL and recovery from an emptied Redis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import redis
from sqlalchemy import select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Conversation
from reengage.domain.inactivity import inactivity_key
from reengage.runtime import Runtime
from tests.conftest import REDIS_URL, settle
from tests.factories import make_bot, make_org, message


def test_activity_reaches_the_database_only_when_flushed(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, "u", clock.now())])
    with runtime.sessions() as s:
        assert s.scalars(select(Conversation)).all() == []
    assert runtime.activity.flush(clock.now()) == 1
    assert runtime.activity.flush(clock.now()) == 0
    with runtime.sessions() as s:
        assert s.scalars(select(Conversation.activity_seq)).all() == [1]


def test_versions_continue_after_redis_restarts_empty(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, "u", clock.now()) for _ in range(5)])
    settle(runtime)
    redis_client.flushdb()
    clock.advance(timedelta(minutes=1))
    runtime.record(org.org_id, [message(bot, "u", clock.now())])
    settle(runtime)
    with runtime.sessions() as s:
        conv = s.scalars(select(Conversation)).one()
    assert (conv.activity_seq, conv.last_activity_at) == (6, clock.now())
    timer = runtime.timers.get(inactivity_key(bot, "u"))
    assert timer is not None
    assert timer.version == 6


def test_a_flusher_that_died_mid_flush_is_taken_over(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, f"u{i}", clock.now()) for i in range(3)])
    dirty = next(k for k in redis_client.scan_iter("*:dirty"))
    inflight = dirty.replace(":dirty", ":flushing")
    # A flusher took the subjects and died before writing them.
    for subject in redis_client.spop(dirty, 10):
        redis_client.zadd(inflight, {subject: int(clock.now().timestamp() * 1000)})
    assert runtime.activity.flush(clock.now()) == 0
    clock.advance(timedelta(minutes=2))
    assert runtime.activity.flush(clock.now()) == 3
