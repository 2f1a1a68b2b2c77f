"""Bounded Redis: quiet subjects leave it once the database has them and no silence timer
needs them, and come back from the database, state and timers intact, when they return;
event ids are remembered per subject, a bounded number of them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import redis
from sqlalchemy import select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Contact, Conversation
from reengage.domain.inactivity import inactivity_key
from reengage.runtime import Runtime
from reengage.testing.time_travel import TimeTravel
from tests.conftest import REDIS_URL, settle
from tests.factories import make_bot, make_org, message
from tests.integration.test_redis_activity import _record_counting_queries

IDLE = timedelta(minutes=5)


def _subject_keys(client: redis.Redis) -> list[str]:
    return [str(k) for k in client.scan_iter("*:activity}:s:*")]


def _conversations(runtime: Runtime, user: str) -> list[tuple[int, int, str]]:
    with runtime.sessions() as s:
        rows = s.execute(
            select(Conversation.id, Conversation.activity_seq, Conversation.status)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.external_id == user)
            .order_by(Conversation.id)
        ).tuples()
        return list(rows)


def test_a_quiet_subject_leaves_redis_and_returns_with_its_conversation_and_timer(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
) -> None:
    runtime = make_runtime(db_url, redis_url=REDIS_URL, hot_state_idle=IDLE)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org)  # silence after 10 minutes
    travel = TimeTravel(runtime, clock)
    runtime.record(org, [message(bot, "u", clock.now()) for _ in range(3)])
    travel.wait(timedelta(minutes=8))  # flushed, quiet past the idle time, timer pending
    assert runtime.activity.hot_seq(bot, "u") == 3
    travel.wait(timedelta(minutes=3))  # the silence fired; now quiet for less than the idle
    assert runtime.timers.get(inactivity_key(bot, "u")) is None
    assert runtime.activity.hot_seq(bot, "u") == 3
    travel.wait(IDLE)
    assert runtime.activity.hot_seq(bot, "u") is None
    assert _subject_keys(redis_client) == []
    [(conv_id, seq, status)] = _conversations(runtime, "u")
    assert seq == 3
    # The user comes back: the same conversation continues from the database's version.
    runtime.record(org, [message(bot, "u", clock.now())])
    assert runtime.activity.hot_seq(bot, "u") == 4
    timer = runtime.timers.get(inactivity_key(bot, "u"))
    assert timer is not None
    assert (timer.version, timer.due_at) == (4, clock.now() + timedelta(minutes=10))
    settle(runtime)
    assert _conversations(runtime, "u") == [(conv_id, 4, status)]


def test_state_not_yet_in_the_database_or_awaited_by_a_timer_stays(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
) -> None:
    runtime = make_runtime(db_url, redis_url=REDIS_URL, hot_state_idle=IDLE)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org, inactivity_threshold=timedelta(hours=2))
    quiet = make_bot(runtime, org)
    runtime.record(org, [message(bot, "timed", clock.now()), message(quiet, "q", clock.now())])
    runtime.timers.cancel([inactivity_key(quiet, "q")])  # as if its silence had fired
    later = clock.now() + timedelta(hours=1)
    assert runtime.activity.expire_idle(later) == 0  # nothing written to the database yet
    settle(runtime)
    # The subject without a timer goes after the idle time; the other waits for its silence.
    assert runtime.activity.expire_idle(clock.now() + IDLE - timedelta(seconds=1)) == 0
    assert runtime.activity.expire_idle(later) == 1
    assert runtime.activity.hot_seqs([(bot, "timed"), (quiet, "q")]) == [1, None]
    # Active again before its idle time ran out: it stays, and so does its new activity.
    runtime.record(org, [message(bot, "timed", clock.now())])
    assert runtime.activity.expire_idle(clock.now() + timedelta(days=1)) == 0
    assert runtime.activity.hot_seq(bot, "timed") == 2


def test_a_returning_subject_costs_one_database_read_and_a_new_one_none(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL, hot_state_idle=IDLE)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org)
    assert runtime.activity.restore(clock.now())  # Redis holds every subject
    runtime.record(org, [message(bot, "back", clock.now())])
    runtime.timers.cancel([inactivity_key(bot, "back")])  # as if its silence had fired
    settle(runtime)
    assert runtime.activity.expire_idle(clock.now() + IDLE) == 1
    clock.advance(IDLE)
    assert _record_counting_queries(runtime, org, bot, "new") == 0
    assert _record_counting_queries(runtime, org, bot, "back") == 1  # its conversation
    assert runtime.activity.hot_seqs([(bot, "back"), (bot, "new")]) == [2, 1]


def test_retries_of_a_subjects_latest_event_ids_are_dropped(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL, event_dedup_per_subject=3)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org)

    def send(user: str, event_id: str) -> int:
        return runtime.record(org, [message(bot, user, clock.now(), event_id=event_id)]).accepted

    assert [send("u", e) for e in ("a", "b", "a", "c", "b")] == [1, 1, 0, 1, 0]
    assert send("u", "a") == 0  # still among the last three (a, b, c)
    assert send("u", "d") == 1
    assert send("u", "a") == 1  # pushed out by d: a retry this late counts once more
    assert send("other", "d") == 1  # ids are remembered per subject
    assert runtime.activity.hot_seq(bot, "u") == 5
