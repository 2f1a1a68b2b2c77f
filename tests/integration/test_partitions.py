"""Day partitions of the activity log on PostgreSQL (migration 0018), and `reengage prune`:
rows survive the conversion, old days go whole, the rest stays and keeps refusing retries."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text

from reengage.adapters.clock import ManualClock
from reengage.adapters.db import id_partitions, partitions
from reengage.adapters.db.activity_store import _claim_event_ids
from reengage.adapters.db.migrate import alembic_config, upgrade
from reengage.adapters.db.models import (
    ActivityRecord,
    Contact,
    Conversation,
    ConversationEvent,
    Organization,
)
from reengage.adapters.db.session import make_engine, make_session_factory
from reengage.domain.activity import ActivityEvent, EventType
from reengage.runtime import Runtime
from reengage.services import campaign_replay, event_log
from tests.conftest import TEST_SECRET_KEY, database_at
from tests.factories import make_bot, make_org, message

NOW = datetime.now(UTC)
TODAY = NOW.date()
OLD = NOW - timedelta(days=200)  # past the 90-day retention
RECENT = NOW - timedelta(days=2)
DB = f"reengage_partitions_{os.getpid()}"
# Each of these migrates a database of its own from 0014 (one stays in the fast lane).
SLOW = pytest.mark.slow


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own, migrated up to the revision before the partitions."""
    with database_at(DB, "0014") as url:
        yield url


def _sql(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    with engine.begin() as conn:
        result = conn.execute(text(sql), params)
        rows = [tuple(r) for r in result] if result.returns_rows else []
    engine.dispose()
    return rows


def _seed(url: str) -> None:
    rows = [("old-1", OLD), ("old-2", OLD), ("recent", RECENT), ("now", NOW)]
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(Organization.__table__).values(id=1, name="a", language="en", created_at=NOW)
        )
        conn.execute(
            insert(ActivityRecord.__table__),
            [
                {
                    "org_id": 1,
                    "event_id": event_id,
                    "type": EventType.USER_MESSAGE.value,
                    "bot_id": 7,
                    "user_id": "u1",
                    "occurred_at": at,
                    "received_at": at,
                }
                for event_id, at in rows
            ],
        )
    engine.dispose()


def _partitions(url: str) -> set[str]:
    rows = _sql(
        url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'activity_event'::regclass",
    )
    return {str(name) for (name,) in rows}


def _prune(url: str, *args: str) -> str:
    env = {
        **os.environ,
        "REENGAGE_DATABASE_URL": url,
        "REENGAGE_SECRET_KEY": TEST_SECRET_KEY,
        "REENGAGE_RETENTION_DAYS": "90",
    }
    done = subprocess.run(
        [sys.executable, "-m", "reengage.entrypoints.cli", "prune", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _claim(url: str, event_id: str, at: datetime) -> bool:
    """The activity store's own idempotency insert: True when the event is new."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        event = ActivityEvent(event_id, EventType.USER_MESSAGE, 7, "u1", at)
        fresh = _claim_event_ids(session, 1, [event], NOW)
        session.commit()
    engine.dispose()
    return bool(fresh)


@SLOW
def test_the_migration_moves_the_rows_into_day_partitions(database: str) -> None:
    _seed(database)

    upgrade(database, "0018")

    assert _sql(database, "SELECT event_id FROM activity_event ORDER BY occurred_at") == [
        ("old-1",),
        ("old-2",),
        ("recent",),
        ("now",),
    ]
    names = _partitions(database)
    for day in (OLD.date(), RECENT.date(), TODAY, TODAY + timedelta(days=1)):
        assert partitions.partition_name("activity_event", day) in names
    assert "activity_event_default" in names
    # Every row sits in its day's partition, none in the DEFAULT one.
    assert _sql(database, "SELECT count(*) FROM activity_event_default") == [(0,)]
    assert _sql(database, f"SELECT event_id FROM activity_event_p{RECENT.date():%Y%m%d}") == [
        ("recent",)
    ]


def test_prune_drops_the_old_days_whole_and_keeps_the_rest(database: str) -> None:
    _seed(database)
    upgrade(database, "0018")
    old_partition = partitions.partition_name("activity_event", OLD.date())

    dry = _prune(database, "--dry-run")

    assert f"drop partition {old_partition}" in dry
    assert old_partition in _partitions(database)  # a dry run changes nothing
    out = _prune(database)
    assert f"drop partition {old_partition}" in out
    names = _partitions(database)
    assert old_partition not in names
    assert partitions.partition_name("activity_event", RECENT.date()) in names
    for ahead in range(partitions.AHEAD_DAYS + 1):
        assert partitions.partition_name("activity_event", TODAY + timedelta(days=ahead)) in names
    assert _sql(database, "SELECT event_id FROM activity_event ORDER BY occurred_at") == [
        ("recent",),
        ("now",),
    ]
    assert "drop partition" not in _prune(database)  # nothing left to drop


@SLOW
def test_after_a_prune_retries_are_still_refused_and_history_still_reads(database: str) -> None:
    _seed(database)
    upgrade(database, "0018")
    _prune(database)
    midnight = datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC)
    last_instant = midnight - timedelta(microseconds=1)  # yesterday's partition, its very end

    assert _claim(database, "edge", last_instant)
    assert not _claim(database, "edge", last_instant)  # a retry, across the day's boundary
    assert not _claim(database, "recent", RECENT)
    # An event older than every kept day lands in the DEFAULT partition, once.
    assert _claim(database, "late", OLD)
    assert not _claim(database, "late", OLD)

    # The replay's history read (bounded by the partition key) only meets the kept days.
    engine = make_engine(database)
    with make_session_factory(engine)() as session:
        times = campaign_replay.activity(
            session, 1, 7, ["u1"], NOW - timedelta(days=30), NOW + timedelta(seconds=1)
        )
    engine.dispose()
    assert sorted(times["u1"]) == sorted([RECENT, last_instant, NOW])


@SLOW
def test_prune_moves_rows_the_default_partition_caught_into_their_new_day(
    database: str,
) -> None:
    _seed(database)
    upgrade(database, "0018")
    ahead = NOW + timedelta(days=partitions.AHEAD_DAYS + 1)
    assert _claim(database, "ahead", ahead)  # no partition yet: the DEFAULT one takes it
    engine = make_engine(database)
    with engine.begin() as conn:
        report = partitions.prune(conn, ahead, timedelta(days=90))
    engine.dispose()

    assert partitions.partition_name("activity_event", ahead.date()) in report.created
    assert _sql(database, f"SELECT event_id FROM activity_event_p{ahead.date():%Y%m%d}") == [
        ("ahead",)
    ]
    assert not _claim(database, "ahead", ahead)


@SLOW
def test_the_downgrade_restores_the_plain_table_with_its_rows(database: str) -> None:
    _seed(database)
    upgrade(database, "0018")

    from alembic import command

    command.downgrade(alembic_config(database), "0014")

    assert _sql(
        database,
        "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'activity_event'::regclass",
    ) == [(0,)]
    assert _sql(database, "SELECT count(*) FROM activity_event") == [(4,)]
    assert not _claim(database, "recent", RECENT)


def test_sqlite_prunes_in_batches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    _seed(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        report = partitions.prune(conn, NOW, timedelta(days=90))
    engine.dispose()

    assert report.deleted == {"activity_event": 2}
    assert report.dropped == []
    assert _sql(url, "SELECT event_id FROM activity_event ORDER BY occurred_at") == [
        ("recent",),
        ("now",),
    ]


def _conversation(runtime: Runtime, org_id: int, bot_id: int, user: str, at: datetime) -> int:
    """A conversation opened (and last active) at `at`."""
    assert isinstance(runtime.clock, ManualClock)
    runtime.clock.set(at)
    runtime.record(org_id, [message(bot_id, user, at)])
    with runtime.sessions() as session:
        return int(
            session.scalars(
                select(Conversation.id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.external_id == user)
            ).one()
        )


def _append(runtime: Runtime, conversation_id: int, key: str, at: datetime) -> bool:
    """The log's own once-only append: True when appended."""
    with runtime.sessions() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        appended = event_log.append_event(
            session, conversation, kind="inactivity_detected", dedup_key=key, now=at
        )
        session.commit()
    return appended


def _events(runtime: Runtime, conversation_id: int) -> list[str]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(ConversationEvent.dedup_key)
                .where(ConversationEvent.conversation_id == conversation_id)
                .order_by(ConversationEvent.id)
            )
        )


def _event_partitions(url: str) -> dict[str, str]:
    rows = _sql(
        url,
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'conversation_event'::regclass",
    )
    return {str(name): str(bound) for name, bound in rows}


@SLOW
def test_conversation_events_go_by_ranges_of_conversations(
    database: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    clock.set(OLD)
    runtime = make_runtime(database)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    old = _conversation(runtime, org.org_id, bot, "old", OLD)
    recent = _conversation(runtime, org.org_id, bot, "recent", RECENT - timedelta(days=1))
    new = _conversation(runtime, org.org_id, bot, "new", RECENT)
    for conversation, at in [(old, OLD), (recent, RECENT), (new, RECENT)]:
        assert _append(runtime, conversation, "silence:1", at)
    runtime.close()

    upgrade(database, "0018")

    runtime = make_runtime(database)
    names = _event_partitions(database)
    assert {"conversation_event_c1", f"conversation_event_c{recent}"} <= set(names)
    assert f"conversation_event_c{new}" in names
    assert _sql(database, "SELECT count(*) FROM conversation_event") == [(3,)]
    assert not _append(runtime, recent, "silence:1", NOW)  # once-only, as before

    out = _prune(database)

    assert "drop partition conversation_event_c1" in out  # every conversation in it quiet
    names = _event_partitions(database)
    assert "conversation_event_c1" not in names
    assert f"conversation_event_c{recent}" in names
    # The list of a conversation's events (by the partition key) reads what is kept.
    assert _events(runtime, recent) == ["silence:1"]
    assert _events(runtime, old) == []
    assert not _append(runtime, recent, "silence:1", NOW)
    assert _append(runtime, recent, "silence:2", NOW)
    # A late event of a dropped range is kept (in the DEFAULT partition), once.
    assert _append(runtime, old, "late", NOW)
    assert not _append(runtime, old, "late", NOW)


@SLOW
def test_the_next_range_is_made_ahead_and_takes_what_overran(
    database: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    clock.set(RECENT)
    upgrade(database, "0018")
    runtime = make_runtime(database)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    top_end = id_partitions.MIN_RANGE  # the migration's one range: [1, 0 + MIN_RANGE)
    assert _event_partitions(database)["conversation_event_c1"] == (
        f"FOR VALUES FROM ('1') TO ('{top_end}')"
    )
    _sql(database, f"SELECT setval('conversation_id_seq', {top_end + 4})")
    far = _conversation(runtime, org.org_id, bot, "far", RECENT)
    assert far > top_end
    assert _append(runtime, far, "silence:1", RECENT)  # past every range: the DEFAULT one
    assert _sql(database, "SELECT count(*) FROM conversation_event_default") == [(1,)]

    out = _prune(database)

    assert f"create partition conversation_event_c{top_end}" in out
    assert _sql(database, f"SELECT dedup_key FROM conversation_event_c{top_end}") == [
        ("silence:1",)
    ]
    assert _sql(database, "SELECT count(*) FROM conversation_event_default") == [(0,)]
    assert not _append(runtime, far, "silence:1", NOW)
    assert "create partition conversation_event_c" not in _prune(database)  # not half used


def test_a_scheduler_prunes_every_interval(
    pg_db: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    """The scheduled job: a scheduler makes the coming days' partitions when it starts and
    again each `prune_interval`, whatever else it does."""
    from reengage.entrypoints.scheduler.main import build_scheduler

    clock.set(NOW + timedelta(days=30))
    runtime = make_runtime(pg_db)
    scheduler = build_scheduler(runtime.settings, runtime)
    ahead = partitions.partition_name("activity_event", (NOW + timedelta(days=30)).date())
    assert ahead not in _partitions(pg_db)

    scheduler.run_once()

    assert ahead in _partitions(pg_db)
    start = NOW + timedelta(days=30)
    next_day = partitions.partition_name("activity_event", start.date() + timedelta(days=4))
    clock.set(start + timedelta(minutes=30))
    scheduler.run_once()  # within the interval (1 h): no prune
    assert next_day not in _partitions(pg_db)
    clock.set(start + timedelta(days=1))
    scheduler.run_once()
    assert next_day in _partitions(pg_db)
