"""The Redis activity store: write-behind to PostgreSQL and recovery from an emptied Redis,
on one Redis and on a Redis Cluster (three shards)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import event, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Contact, Conversation, ConversationEvent
from reengage.domain.inactivity import inactivity_key
from reengage.runtime import Runtime
from reengage.services.record_activity import bot_policies
from tests.conftest import HotRedis, settle
from tests.factories import make_bot, make_org, message


def test_activity_reaches_the_database_only_when_flushed(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    hot_redis: HotRedis,
) -> None:
    runtime = make_runtime(pg_db, **hot_redis.settings)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, "u", clock.now())])
    with runtime.sessions() as s:
        assert s.scalars(select(Conversation)).all() == []
    assert runtime.activity.flush(clock.now()) == 1
    assert runtime.activity.flush(clock.now()) == 0
    with runtime.sessions() as s:
        assert s.scalars(select(Conversation.activity_seq)).all() == [1]


def test_many_subjects_are_read_and_written_behind_together(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    hot_redis: HotRedis,
) -> None:
    runtime = make_runtime(pg_db, **hot_redis.settings)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    b = 'Zoë "🙂" \\ ção'  # any text a platform may use as a user id, quotes included
    runtime.record(org.org_id, [message(bot, "a", clock.now()), message(bot, b, clock.now())])
    runtime.record(org.org_id, [message(bot, b, clock.now())])
    store = runtime.activity
    assert store.hot_seqs([(bot, "a"), (bot, b), (bot, "nobody")]) == [1, 2, None]
    transactions: list[int] = []
    event.listen(runtime.engine, "commit", lambda _conn: transactions.append(1))
    store.flush_subjects([(bot, "a"), (bot, b), (bot, "a")], clock.now())
    assert len(transactions) == 1  # both subjects in one transaction
    with runtime.sessions() as s:
        assert sorted(s.scalars(select(Conversation.activity_seq))) == [1, 2]
        assert sorted(s.scalars(select(Contact.external_id))) == sorted(["a", b])
    store.flush_subjects([(bot, "a"), (bot, b)], clock.now())
    assert len(transactions) == 1  # nothing left to write
    assert store.flush(clock.now()) == 0


def test_versions_continue_after_redis_restarts_empty(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    hot_redis: HotRedis,
) -> None:
    runtime = make_runtime(pg_db, **hot_redis.settings)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, "u", clock.now()) for _ in range(5)])
    settle(runtime)
    hot_redis.empty()
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
    hot_redis: HotRedis,
) -> None:
    runtime = make_runtime(pg_db, **hot_redis.settings)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, f"u{i}", clock.now()) for i in range(3)])
    # A flusher took the subjects (of every shard) and died before writing them.
    _taken_by_another_flusher(hot_redis, clock)
    assert runtime.activity.flush(clock.now()) == 0
    clock.advance(timedelta(minutes=2))
    assert runtime.activity.flush(clock.now()) == 3


def _record_counting_queries(runtime: Runtime, org_id: int, bot: int, user: str) -> int:
    """Record one message straight into the activity store; how many SQL statements it ran."""
    with runtime.sessions() as s:
        policies = bot_policies(s, org_id, {bot}, timedelta(minutes=10))
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        now = runtime.clock.now()
        runtime.activity.record(org_id, policies, [message(bot, user, now)], now)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)
    return len(statements)


def test_a_new_subject_costs_no_database_read_once_redis_holds_every_subject(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    hot_redis: HotRedis,
) -> None:
    runtime = make_runtime(pg_db, **hot_redis.settings)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    # Not known to be complete yet (a fresh Redis might be an emptied one): read on arrival.
    assert _record_counting_queries(runtime, org.org_id, bot, "first") == 1
    assert runtime.activity.restore(clock.now())
    assert _record_counting_queries(runtime, org.org_id, bot, "second") == 0
    assert _record_counting_queries(runtime, org.org_id, bot, "first") == 0


def test_a_subject_only_in_the_database_continues_after_redis_was_emptied(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    hot_redis: HotRedis,
) -> None:
    runtime = make_runtime(pg_db, **hot_redis.settings)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    assert runtime.activity.restore(clock.now())
    runtime.record(org.org_id, [message(bot, u, clock.now()) for u in ("a", "b", "b", "c")])
    settle(runtime)
    hot_redis.empty()  # the subjects now exist only in PostgreSQL
    clock.advance(timedelta(minutes=1))
    # Before the scheduler restored them, a subject is read from the database on arrival.
    assert _record_counting_queries(runtime, org.org_id, bot, "a") == 1
    # The restore brings the others back a page at a time, then declares Redis complete.
    while not runtime.activity.restore(clock.now(), limit=1):
        pass
    assert _record_counting_queries(runtime, org.org_id, bot, "b") == 0
    settle(runtime)
    with runtime.sessions() as s:
        seqs = dict(
            s.execute(
                select(Contact.external_id, Conversation.activity_seq).join(
                    Conversation, Conversation.contact_id == Contact.id
                )
            ).all()
        )
    assert seqs == {"a": 2, "b": 3, "c": 1}
    timer = runtime.timers.get(inactivity_key(bot, "b"))
    assert timer is not None
    assert (timer.version, timer.due_at) == (3, clock.now() + timedelta(minutes=10))


def test_a_restore_cut_short_by_another_loss_starts_over(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    hot_redis: HotRedis,
) -> None:
    runtime = make_runtime(pg_db, **hot_redis.settings)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, f"u{i}", clock.now()) for i in range(3)])
    settle(runtime)
    hot_redis.empty()
    assert not runtime.activity.restore(clock.now(), limit=1)
    hot_redis.empty()  # lost again, with the restore's progress
    while not runtime.activity.restore(clock.now(), limit=1):
        pass
    for i in range(3):
        assert runtime.activity.hot_seq(bot, f"u{i}") == 1


def test_a_silence_waits_for_its_activity_being_written_behind_elsewhere(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    hot_redis: HotRedis,
) -> None:
    """A silence that fires while another process has taken its subject to write it behind
    (not committed yet) finds no conversation: it looks again a second later instead of
    being dropped, and runs once the write has landed."""
    runtime = make_runtime(pg_db, **hot_redis.settings)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, "u", clock.now())])
    _taken_by_another_flusher(hot_redis, clock)
    clock.advance(timedelta(minutes=11))
    silence = runtime.timers.get(inactivity_key(bot, "u"))
    assert silence is not None
    assert silence.due_at <= clock.now()
    handler = runtime.timer_engine.handlers[silence.purpose]
    outcome = handler.handle(silence, clock.now())
    assert [(t.key, t.due_at, t.version, t.payload.get("deferred")) for t in outcome.timers] == [
        (silence.key, clock.now() + timedelta(seconds=1), silence.version, 1)
    ]
    with runtime.sessions() as s:
        assert s.scalars(select(Conversation)).all() == []
    clock.advance(timedelta(minutes=2))  # the flusher died: its subjects are taken over
    settle(runtime)
    again = handler.handle(outcome.timers[0], clock.now())
    assert all("deferred" not in t.payload for t in again.timers)
    with runtime.sessions() as s:
        (conversation,) = s.scalars(select(Conversation)).all()
        assert conversation.inactivity_due_at != silence.due_at  # the silence was handled
    with runtime.sessions() as s:
        assert "inactivity_detected" in s.scalars(select(ConversationEvent.kind)).all()


def test_a_silence_with_nothing_on_its_way_is_dropped_at_once(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    hot_redis: HotRedis,
) -> None:
    """No conversation and no hot state (its subject was never written, Redis lost it):
    nothing will land, so the silence is not retried."""
    runtime = make_runtime(pg_db, **hot_redis.settings)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, "u", clock.now())])
    silence = runtime.timers.get(inactivity_key(bot, "u"))
    assert silence is not None
    hot_redis.empty()
    clock.advance(timedelta(minutes=11))
    outcome = runtime.timer_engine.handlers[silence.purpose].handle(silence, clock.now())
    assert not outcome.timers


def _taken_by_another_flusher(hot_redis: HotRedis, clock: ManualClock) -> None:
    """Every dirty subject (of every shard) moved in flight, as a flusher takes them before
    writing them to the database."""
    client = hot_redis.client
    for dirty in list(client.scan_iter("*:dirty")):
        inflight = dirty.replace(":dirty", ":flushing")
        for subject in client.spop(dirty, 10):
            client.zadd(inflight, {subject: int(clock.now().timestamp() * 1000)})


def test_silences_of_users_who_wrote_together_are_claimed_across_bots(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    hot_redis: HotRedis,
) -> None:
    """Users of many bots who wrote at one instant fall silent together: their silences are
    claimed spread over the bots (each bot's platform rate bounds its own sends), not one
    bot's after another's as their keys sort."""
    runtime = make_runtime(pg_db, **hot_redis.settings)
    org = make_org(runtime)
    bots = [make_bot(runtime, org.org_id) for _ in range(8)]
    runtime.record(org.org_id, [message(b, f"u{n}", clock.now()) for b in bots for n in range(25)])
    clock.advance(timedelta(minutes=11))
    first = runtime.timers.claim_due(clock.now(), 25, timedelta(seconds=30))
    assert {c.timer.purpose for c in first} == {"inactivity"}
    assert len({c.timer.payload["bot_id"] for c in first}) >= 4
