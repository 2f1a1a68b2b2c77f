"""Hour-of-week profiles are learned where activity reaches the database: the embedded store's
commit and the write-behind flush (SQLite and PostgreSQL, with and without Redis)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.hour_profiles import DEFAULT_ZONE, first_profile
from reengage.adapters.db.models import Contact
from reengage.domain.activity import EventType
from reengage.domain.schedule import zone
from reengage.domain.usual_hour import ENCODED_BYTES, HourProfile, hour_of_week
from reengage.runtime import Runtime
from tests.conftest import REDIS_URL, fresh_database, settle
from tests.factories import make_bot, make_org, message

STORES = [("sqlite", "sql"), ("postgresql", "sql"), ("postgresql", "redis")]
SP = zone("America/Sao_Paulo")


@pytest.fixture(params=STORES, ids=["-".join(p) for p in STORES])
def runtime(
    request: pytest.FixtureRequest, make_runtime: Callable[..., Runtime], tmp_path: Path
) -> Runtime:
    database, kind = request.param
    url = fresh_database(database, request, tmp_path)
    if kind == "sql":
        return make_runtime(url)
    request.getfixturevalue("redis_client")  # an empty Redis
    return make_runtime(url, redis_url=REDIS_URL)


def profile_of(runtime: Runtime, user: str) -> bytes | None:
    settle(runtime)
    with runtime.sessions() as s:
        return s.scalar(select(Contact.hour_profile).where(Contact.external_id == user))


def test_each_days_evening_messages_land_in_the_evening_slot(
    runtime: Runtime, clock: ManualClock
) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    clock.set(datetime(2026, 3, 2, 22, 10, tzinfo=UTC))  # Monday 19:10 in São Paulo
    for _ in range(6):
        burst = [message(bot, "ana", clock.now() + timedelta(minutes=m)) for m in (0, 5, 20)]
        runtime.record(org.org_id, burst)
        runtime.record(org.org_id, [message(bot, "ana", clock.now(), EventType.BOT_MESSAGE)])
        settle(runtime)
        clock.advance(timedelta(days=1))
    raw = profile_of(runtime, "ana")
    assert raw is not None
    assert len(raw) == ENCODED_BYTES
    profile = HourProfile.decode(raw)
    slots = {i for i, c in enumerate(profile.counts) if c}
    assert slots == {d * 24 + 19 for d in range(6)}  # once per day: a burst is one hour
    assert profile.total == pytest.approx(sum(0.5 ** (d / 28) for d in range(6)), abs=0.05)
    assert hour_of_week(datetime(2026, 3, 2, 22, 10, tzinfo=UTC), SP) == 19


def test_profiles_are_written_a_batch_at_a_time(runtime: Runtime, clock: ManualClock) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    clock.set(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    statements: list[str] = []

    def seen(conn: object, cursor: object, sql: str, *args: object) -> None:
        if "hour_profile" in sql and sql.lstrip().upper().startswith("UPDATE"):
            statements.append(sql)

    event.listen(runtime.engine, "before_cursor_execute", seen)
    try:
        runtime.record(org.org_id, [message(bot, f"u{i}", clock.now()) for i in range(40)])
        settle(runtime)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", seen)
    # One update for the 40 contacts; the write-behind to PostgreSQL creates them with it.
    created_with_it = runtime.settings.redis_url and runtime.engine.dialect.name == "postgresql"
    assert len(statements) == (0 if created_with_it else 1)
    with runtime.sessions() as s:
        profiles = s.scalars(select(Contact.hour_profile)).all()
    assert len(profiles) == 40
    assert all(HourProfile.decode(p).total == 1 for p in profiles)


def test_a_new_contacts_first_profile_is_the_one_learning_gives_it() -> None:
    start = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # a DST change in the default zone's year
    tz = zone(DEFAULT_ZONE)
    for minutes in range(0, 60 * 24 * 3, 17):
        instant = start + timedelta(minutes=minutes, seconds=minutes % 60)
        assert first_profile(instant) == HourProfile().observe(instant, tz).encode()
