"""Memory benchmark: Redis returns to a bounded floor once subjects go quiet.

A million subjects (100,000 with `--quick`) each send one message through the Redis activity
store; the write-behind puts them in PostgreSQL; then the clock (a manual one) moves past
`hot_state_idle` and the scheduler's expiry lets their hot state go. Redis `used_memory` is
printed before, at the peak and after, and a sample of subjects is brought back to check that
each continues from the database's version. Policies carry no inactivity threshold, so no
silence timer is pending (a pending timer keeps its subject until it has fired; the timer
bench measures those). Run:

    .venv/bin/python bench/memory.py [--quick] [--redis-url URL]

Last line: `floor_bytes=… peak_bytes=… before_bytes=…`.
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import timedelta
from typing import Any, cast

import psycopg
import redis

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.migrate import upgrade
from reengage.adapters.redis.activity_store import RedisActivityStore
from reengage.config import Settings
from reengage.domain.activity import ActivityEvent, BotPolicy, ChannelKind, EventType
from reengage.entrypoints.logging import configure_logging
from reengage.runtime import Runtime
from reengage.services.tenancy import create_bot, create_organization

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "reengage_bench_memory"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/3"  # a db no other bench or test uses
IDLE = timedelta(minutes=30)
BATCH = 500
BOTS = 4
SAMPLE = 1000  # subjects brought back after the expiry


def used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def reset_database(create: bool = True) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if create:
            conn.execute(f"CREATE DATABASE {DB_NAME}")


def bench(rt: Runtime, client: redis.Redis, clock: ManualClock, count: int) -> None:
    store = rt.activity
    if not isinstance(store, RedisActivityStore):
        raise RuntimeError("Runtime did not build the Redis activity store")
    org = create_organization(rt.sessions, "bench", clock.now()).org_id
    bots = [
        create_bot(
            rt.sessions, rt.credentials, org, name=f"b{i}", channel=ChannelKind.TELEGRAM,
            now=clock.now(),
        ).id
        for i in range(BOTS)
    ]  # fmt: skip
    policies = {b: BotPolicy(b, org, ChannelKind.TELEGRAM, None) for b in bots}
    while not store.restore(clock.now()):  # an empty database: Redis holds every subject
        pass
    before = used_memory(client)
    peak = before

    def record(people: range, tag: str) -> None:
        nonlocal peak
        now = clock.now()
        for n, start in enumerate(range(0, len(people), BATCH)):
            batch = [
                ActivityEvent(f"{tag}{i}", EventType.USER_MESSAGE, bots[i % BOTS], f"u{i}", now)
                for i in people[start : start + BATCH]
            ]
            store.record(org, policies, batch, now)
            if n % 100 == 0:
                peak = max(peak, used_memory(client))

    began = time.perf_counter()
    record(range(count), "a")
    ingest_s = time.perf_counter() - began
    peak = max(peak, used_memory(client))
    began = time.perf_counter()
    while store.flush(clock.now()):
        pass
    flush_s = time.perf_counter() - began
    written = used_memory(client)
    peak = max(peak, written)
    clock.advance(IDLE + timedelta(seconds=1))
    began = time.perf_counter()
    expired = 0
    while gone := store.expire_idle(clock.now()):
        expired += gone
    expire_s = time.perf_counter() - began
    floor = used_memory(client)
    # A sample comes back: each continues from the database's version (2, not 1).
    back = range(0, count, count // SAMPLE)
    record(back, "b")
    seqs = store.hot_seqs([(bots[i % BOTS], f"u{i}") for i in back])
    continued = sum(1 for s in seqs if s == 2)
    keys = int(cast(int, client.dbsize()))
    print(f"subjects={count} ingest_s={ingest_s:.1f} flush_s={flush_s:.1f}")
    print(f"expired={expired} expire_s={expire_s:.1f} idle={IDLE}")
    print(f"written_bytes={written} per_subject_bytes={(peak - before) / count:.0f}")
    print(f"returned={len(seqs)} continued={continued} keys_after_return={keys}")
    print(f"floor_bytes={floor} peak_bytes={peak} before_bytes={before}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100,000 subjects (< 2 min)")
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args()
    count = 100_000 if args.quick else 1_000_000
    configure_logging(level=logging.WARNING)
    reset_database()
    upgrade(DB_URL)
    client = redis.Redis.from_url(args.redis_url, decode_responses=True)
    client.flushdb()
    clock = ManualClock()
    settings = Settings(
        database_url=DB_URL, redis_url=args.redis_url, broker_url=None, hot_state_idle=IDLE
    )
    rt = Runtime.build(settings, clock=clock)
    try:
        bench(rt, client, clock, count)
    finally:
        rt.close()
        client.flushdb()
        reset_database(create=False)


if __name__ == "__main__":
    main()
