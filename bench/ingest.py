"""Ingest benchmark: reengage (one Redis timer per conversation) vs. one Celery countdown per event.

Both paths run the same `record_activity` database work on the same PostgreSQL database in the
same batches; they differ only in the timer store handed to it. Run:

    .venv/bin/python bench/ingest.py [--quick]

The last line printed is `ratio=<ours events/s / naive events/s>`.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
import redis
from celery import Celery

from reengage.adapters.db.migrate import upgrade
from reengage.adapters.redis.timer_store import RedisTimerStore
from reengage.config import Settings
from reengage.domain.activity import ActivityEvent, ChannelKind, EventType
from reengage.domain.timer import Timer
from reengage.entrypoints.logging import configure_logging
from reengage.ports import TimerStore
from reengage.runtime import Runtime
from reengage.services.record_activity import record_activity
from reengage.services.tenancy import create_bot, create_organization

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "reengage_bench"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
TIMERS_URL = "redis://127.0.0.1:6379/11"  # reengage's timer store
BROKER_URL = "redis://127.0.0.1:6379/12"  # the naive design's Celery broker + version keys
NAMESPACE = "bench-ingest"
QUEUE = "celery"
THRESHOLD = timedelta(minutes=10)
BATCH = 500
BOTS = 4

celery_app = Celery("bench", broker=BROKER_URL)
celery_app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
_broker = redis.Redis.from_url(BROKER_URL, decode_responses=True)


def _version_key(bot_id: int, user_id: str) -> str:
    return f"bench:naive:version:{bot_id}:{user_id}"


@celery_app.task(name="bench.check_inactive")
def check_inactive(bot_id: int, user_id: str, version: int) -> bool:
    """The naive worker at the countdown: still inactive only if no newer message came in."""
    current = cast(str | None, _broker.get(_version_key(bot_id, user_id)))
    return current is not None and int(current) == version  # the benchmark acts on nothing


class NaiveTimers:
    """A timer-store stand-in doing what the naive design does for every message:
    INCR the user's version key (mark_user_activity), then one apply_async(countdown=...)."""

    def __init__(self, countdown: float) -> None:
        self.countdown = countdown
        self.events: Sequence[ActivityEvent] = ()  # the batch being recorded
        self.seconds = 0.0  # time spent in schedule()

    def schedule(self, timers: Sequence[Timer]) -> None:
        began = time.perf_counter()
        for e in self.events:
            version = int(cast(int, _broker.incr(_version_key(e.bot_id, e.user_id))))
            check_inactive.apply_async((e.bot_id, e.user_id, version), countdown=self.countdown)
        self.seconds += time.perf_counter() - began

    def cancel(self, keys: Sequence[str]) -> None:
        pass


class TimedStore(RedisTimerStore):
    """The real Redis timer store, also counting the time spent in schedule()."""

    seconds = 0.0

    def schedule(self, timers: Sequence[Timer]) -> None:
        began = time.perf_counter()
        super().schedule(timers)
        self.seconds += time.perf_counter() - began


@dataclass
class Run:
    name: str
    events: int
    seconds: float
    mem_before: int
    mem_after: int
    pending: int  # timers pending in our store / messages in the broker queue
    structure_bytes: int  # MEMORY USAGE of the timer keys / of the queue list
    timer_seconds: float  # of `seconds`, spent publishing timers (the rest is database work)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def mem_delta(self) -> int:
        return self.mem_after - self.mem_before


def used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def key_bytes(client: redis.Redis, *keys: str) -> int:
    return sum(int(cast(int, client.memory_usage(k, samples=0)) or 0) for k in keys)


def reset_database(create: bool = True) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if not create:
            return
        conn.execute(f"CREATE DATABASE {DB_NAME}")
        # Workaround (see README): record_activity's conversation upsert binds the partial
        # index predicate as a parameter; once psycopg prepares it and PostgreSQL switches to
        # a generic plan, ON CONFLICT can no longer infer the index. Custom plans avoid that.
        conn.execute(f"ALTER DATABASE {DB_NAME} SET plan_cache_mode = force_custom_plan")


def subjects(bots: list[int], prefix: str, count: int) -> list[tuple[int, str]]:
    return [(bots[i % len(bots)], f"{prefix}-u{i}") for i in range(count)]


def round_robin(prefix: str, people: list[tuple[int, str]], n: int) -> list[ActivityEvent]:
    """n events cycling over the subjects: each one's 1st event opens it, then it is returning."""
    start = datetime.now(UTC)
    out = []
    for i in range(n):
        bot, user = people[i % len(people)]
        kind = EventType.USER_MESSAGE if (i // len(people)) % 2 == 0 else EventType.BOT_MESSAGE
        out.append(
            ActivityEvent(f"{prefix}-e{i}", kind, bot, user, start + timedelta(milliseconds=i))
        )
    return out


def chatty(prefix: str, people: list[tuple[int, str]], n: int) -> list[ActivityEvent]:
    """n events at random over existing subjects, user and bot messages alternating."""
    rng = random.Random(7)
    start = datetime.now(UTC)
    kinds = (EventType.USER_MESSAGE, EventType.BOT_MESSAGE)
    return [
        ActivityEvent(
            f"{prefix}-e{i}", kinds[i % 2], *rng.choice(people), start + timedelta(milliseconds=i)
        )
        for i in range(n)
    ]


def record_all(
    rt: Runtime, org_id: int, events: list[ActivityEvent], naive: NaiveTimers | None
) -> float:
    began = time.perf_counter()
    for start in range(0, len(events), BATCH):
        batch = events[start : start + BATCH]
        if naive is None:
            rt.record(org_id, batch)
        else:
            naive.events = batch
            # NaiveTimers only implements the two methods record_activity calls.
            timers = cast(TimerStore, naive)
            record_activity(rt.sessions, timers, org_id, batch, rt.clock.now(), THRESHOLD)
    return time.perf_counter() - began


def run_ours(rt: Runtime, store: TimedStore, name: str, org: int, ev: list[ActivityEvent]) -> Run:
    tr = redis.Redis.from_url(TIMERS_URL)
    before, store.seconds = used_memory(tr), 0.0
    seconds = record_all(rt, org, ev, None)
    after, pending, size = used_memory(tr), store.count(), key_bytes(tr, *store.keys)
    return Run(name, len(ev), seconds, before, after, pending, size, store.seconds)


def run_naive(rt: Runtime, org: int, events: list[ActivityEvent]) -> Run:
    before = used_memory(_broker)
    naive = NaiveTimers(THRESHOLD.total_seconds())
    seconds = record_all(rt, org, events, naive)
    after, queued = used_memory(_broker), int(cast(int, _broker.llen(QUEUE)))
    size = key_bytes(_broker, QUEUE)
    return Run("naive", len(events), seconds, before, after, queued, size, naive.seconds)


def report(run: Run) -> None:
    print(
        f"[{run.name}] events={run.events} seconds={run.seconds:.2f} events/s={run.rate:,.0f} "
        f"used_memory {run.mem_before:,} -> {run.mem_after:,} (delta {run.mem_delta:+,} B) "
        f"pending={run.pending} keys_bytes={run.structure_bytes:,} "
        f"timer_path_s={run.timer_seconds:.2f}"
    )


def table(runs: list[Run]) -> None:
    rows: list[tuple[str, ...]] = [
        ("", *(r.name for r in runs)),
        ("events", *(f"{r.events:,}" for r in runs)),
        ("seconds", *(f"{r.seconds:.2f}" for r in runs)),
        ("events/s", *(f"{r.rate:,.0f}" for r in runs)),
        ("us/event", *(f"{1e6 / r.rate:,.0f}" for r in runs)),
        (
            "  database path",
            *(f"{1e6 * (r.seconds - r.timer_seconds) / r.events:,.0f}" for r in runs),
        ),
        ("  timer path", *(f"{1e6 * r.timer_seconds / r.events:,.0f}" for r in runs)),
        ("used_memory delta (B)", *(f"{r.mem_delta:+,}" for r in runs)),
        ("bytes/event", *(f"{r.mem_delta / r.events:,.0f}" for r in runs)),
        ("pending timers / queued", *(f"{r.pending:,}" for r in runs)),
        ("MEMORY USAGE keys (B)", *(f"{r.structure_bytes:,}" for r in runs)),
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if c else cell.ljust(w)
                for c, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (< 60 s)")
    args = parser.parse_args()
    n_ours, n_naive, n_chat, chat_people = (
        (20_000, 3_000, 20_000, 1_000) if args.quick else (200_000, 20_000, 200_000, 10_000)
    )
    configure_logging(level=logging.WARNING)
    reset_database()
    upgrade(DB_URL)
    settings = Settings(database_url=DB_URL, redis_url=TIMERS_URL, broker_url=BROKER_URL)
    store = TimedStore(redis.Redis.from_url(TIMERS_URL, decode_responses=True), NAMESPACE)
    timers_redis = redis.Redis.from_url(TIMERS_URL)
    timers_redis.delete(*store.keys)
    _broker.flushdb()
    rt = Runtime.build(settings, timers=store)
    try:
        now = rt.clock.now()
        org = create_organization(rt.sessions, "bench", now).org_id
        bots = [
            create_bot(
                rt.sessions,
                settings.secret_key.get_secret_value(),
                org,
                name=f"bot{i}",
                channel=ChannelKind.WHATSAPP if i % 2 else ChannelKind.TELEGRAM,
                now=now,
                inactivity_threshold=THRESHOLD,
            ).id
            for i in range(BOTS)
        ]
        # Warm-up (untimed): connection pool, statement caches, Celery producer pool.
        warm = subjects(bots, "warm", BATCH)
        record_all(rt, org, round_robin("warm-o", warm, BATCH), None)
        record_all(rt, org, round_robin("warm-n", warm, 50), NaiveTimers(THRESHOLD.total_seconds()))
        timers_redis.delete(*store.keys)
        _broker.flushdb()

        ours_people = subjects(bots, "ours", n_ours // 4)
        naive_people = subjects(bots, "naive", n_naive // 4)
        print(
            f"PostgreSQL {DB_NAME} + Redis; batches of {BATCH}; {BOTS} bots; threshold {THRESHOLD}"
        )
        print(f"ours : {n_ours:,} events over {len(ours_people):,} subjects (1 in 4 events new)")
        print(f"naive: {n_naive:,} events over {len(naive_people):,} subjects (same mix)")
        naive = run_naive(rt, org, round_robin("naive", naive_people, n_naive))
        report(naive)
        ours = run_ours(rt, store, "ours", org, round_robin("ours", ours_people, n_ours))
        report(ours)
        hot = ours_people[:chat_people]
        print(f"activity only: {n_chat:,} events at random over {len(hot):,} existing subjects")
        chat = run_ours(rt, store, "activity-only", org, chatty("chat", hot, n_chat))
        report(chat)
        verdict = "one per subject" if chat.pending == len(ours_people) else "MISMATCH"
        print(
            f"pending timers after {n_ours + n_chat:,} events over {len(ours_people):,} "
            f"subjects: {chat.pending:,} ({verdict})"
        )
        print(
            "note: naive figure is publish-only; a worker would additionally hold every "
            "countdown task in memory (ETA) until it is due"
        )
        table([ours, chat, naive])
        print(f"ratio={ours.rate / naive.rate:.1f}")
    finally:
        rt.close()
        timers_redis.delete(*store.keys, f"{{{NAMESPACE}:timers}}:built")
        _broker.flushdb()
        reset_database(create=False)


if __name__ == "__main__":
    main()
