"""The scheduler's write-behind threads: activity reaches PostgreSQL while the scheduler runs,
each subject once, written by several threads side by side; an outage is waited out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import structlog
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Conversation
from reengage.config import Settings
from reengage.entrypoints.scheduler.main import build_scheduler
from reengage.ports import ActivityStore
from reengage.runtime import Runtime
from reengage.timers.write_behind import WriteBehind
from tests.conftest import REDIS_URL, fresh_database
from tests.factories import make_bot, make_org, message
from tests.integration.test_scheduler import scheduler_for

QUICK = timedelta(milliseconds=20)


class Watched:
    """The activity store, with each flush's thread and count kept; `failures` flushes fail
    first, as with Redis away."""

    def __init__(self, inner: ActivityStore, failures: int = 0) -> None:
        self.inner = inner
        self.failures = failures
        self.flushes: list[tuple[str, int]] = []

    def flush(self, now: datetime, limit: int = 2000) -> int:
        if self.failures:
            self.failures -= 1
            raise redis.ConnectionError("Connection refused")
        written = self.inner.flush(now, limit)
        self.flushes.append((threading.current_thread().name, written))
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def conversations(runtime: Runtime) -> tuple[int, int]:
    """How many conversations, and the sum of their activity versions."""
    with runtime.sessions() as s:
        count, seqs = s.execute(
            select(func.count(), func.coalesce(func.sum(Conversation.activity_seq), 0))
        ).one()
    return int(count), int(seqs)


def wait_for(check: Callable[[], bool], seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "not written in time"
        time.sleep(0.02)


@dataclass
class World:
    runtime: Runtime
    org_id: int
    bot_id: int


@pytest.fixture
def world(pg_db: str, make_runtime: Callable[..., Runtime], redis_client: redis.Redis) -> World:
    """PostgreSQL and Redis, one organization with one bot."""
    runtime = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(runtime)
    return World(runtime, org.org_id, make_bot(runtime, org.org_id))


def test_activity_reaches_the_database_while_the_scheduler_runs_written_by_its_threads(
    world: World, clock: ManualClock
) -> None:
    runtime, org_id, bot = world.runtime, world.org_id, world.bot_id
    watched = Watched(runtime.activity)
    scheduler = scheduler_for(
        runtime,
        activity=watched,
        flush_interval=timedelta(hours=1),  # the loop itself would not flush again
        write_behind=WriteBehind(watched, clock, threads=2, interval=QUICK),  # type: ignore[arg-type]
    )
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,))
    thread.start()
    try:
        for wave in range(1, 4):  # new subjects, then the same ones again
            runtime.record(org_id, [message(bot, f"u{i}", clock.now()) for i in range(300)])
            wait_for(lambda wave=wave: conversations(runtime) == (300, 300 * wave))  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("write-behind")]
    writers = {name for name, written in watched.flushes if written}
    assert writers
    assert all(name.startswith("write-behind-") for name in writers), writers
    assert runtime.activity.unflushed() == 0


def test_drained_by_two_threads_each_subject_is_written_once(
    pg_db: str, make_runtime: Callable[..., Runtime], clock: ManualClock, redis_client: redis.Redis
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(runtime)
    bots = [make_bot(runtime, org.org_id) for _ in range(2)]
    users = 5_000
    events = [message(bots[i % 2], f"u{i}", clock.now()) for i in range(users)]
    for start in range(0, users, 500):
        runtime.record(org.org_id, events[start : start + 500])
    watched = Watched(runtime.activity)
    write_behind = WriteBehind(watched, clock, threads=2, interval=QUICK)  # type: ignore[arg-type]
    assert write_behind.drain() == users
    assert conversations(runtime) == (users, users)
    # Both threads took batches: the second read its batch while the first one's was written.
    assert len({name for name, written in watched.flushes if written}) == 2
    again = [message(bots[i % 2], f"u{i}", clock.now()) for i in range(0, users, 2)]
    for start in range(0, len(again), 500):
        runtime.record(org.org_id, again[start : start + 500])
    assert write_behind.drain() == len(again)
    assert conversations(runtime) == (users, users + len(again))
    assert write_behind.drain() == 0


def test_a_round_that_fails_is_waited_out_and_logged_once_each_way(
    world: World, clock: ManualClock
) -> None:
    runtime = world.runtime
    runtime.record(world.org_id, [message(world.bot_id, f"u{i}", clock.now()) for i in range(50)])
    watched = Watched(runtime.activity, failures=3)
    stop = threading.Event()
    with structlog.testing.capture_logs() as logs:
        threads = WriteBehind(watched, clock, threads=1, interval=QUICK).start(stop)  # type: ignore[arg-type]
        try:
            wait_for(lambda: conversations(runtime) == (50, 50))
        finally:
            stop.set()
            for thread in threads:
                thread.join(5)
    events = [e["event"] for e in logs if e["event"].startswith("write_behind.")]
    assert events == ["write_behind.store_unavailable", "write_behind.store_recovered"]
    assert watched.failures == 0


def test_the_scheduler_process_writes_behind_with_threads_on_postgresql_only(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    redis_client: redis.Redis,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    sqlite_db = fresh_database("sqlite", request, tmp_path)
    settings = Settings(database_url=pg_db, redis_url=REDIS_URL, broker_url=None)
    threads = build_scheduler(settings, make_runtime(pg_db, redis_url=REDIS_URL)).write_behind
    assert threads is not None
    assert threads.threads == 2
    none = settings.model_copy(update={"write_behind_threads": 0})
    assert build_scheduler(none, make_runtime(pg_db, redis_url=REDIS_URL)).write_behind is None
    lite = Settings(database_url=sqlite_db, redis_url=REDIS_URL, broker_url=None)
    assert build_scheduler(lite, make_runtime(sqlite_db, redis_url=REDIS_URL)).write_behind is None
