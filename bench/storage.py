"""PostgreSQL rows and bytes per contact per day, and CPU per contact-day, end to end.

N contacts on B Telegram bots (the real adapter against the fake Bot API), each bot with a
recovery campaign (threshold 10 minutes, one step 1 minute later, one text block). One
simulated day per contact: `--sessions` bursts of `--messages` events each (a user message,
then the bot's answer, alternating), every burst followed by a silence that starts an
episode, runs its step and sends its message; the next burst ends the episode (the contact
came back). The clock is a manual one; the real scheduler executes in-process.

Run once with Redis (production: hot activity written behind) and once without (the SQL
activity store, which also keeps `activity_event`). Printed per mode: rows and bytes
(`pg_total_relation_size`, tables with their indexes and TOAST, after the run, before any
VACUUM) per contact for each table that grew, their totals, and this process's CPU per
contact-day (PostgreSQL's and Redis' own CPU are not in it: the machine is shared). Run:

    .venv/bin/python bench/storage.py [--quick] [--contacts N] [--sessions S] [--messages M]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.shop import bots_with_campaign, scheduler_of
from reengage.adapters.clock import ManualClock
from reengage.adapters.db.migrate import upgrade
from reengage.config import Settings
from reengage.domain.activity import ActivityEvent, EventType
from reengage.entrypoints.logging import configure_logging
from reengage.runtime import Runtime
from reengage.testing.server import serve
from reengage.testing.telegram import FakeTelegram

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "reengage_bench_storage"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/11"
CAMPAIGN = {
    "threshold": "10m",
    "steps": [{"schedule": "1m", "blocks": [{"kind": "text", "text": "Ainda por aí?"}]}],
}
SIZES = """
SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""


def reset(redis_url: str | None) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    if redis_url:
        redis.Redis.from_url(redis_url).flushdb()


def sizes() -> dict[str, tuple[int, int]]:
    """Rows (counted) and bytes (a partitioned table: the sum of its partitions) per table."""
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        out: dict[str, tuple[int, int]] = {}
        for name, _, size in conn.execute(SIZES).fetchall():
            rows = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            parts = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                "WHERE inhparent = %s::regclass",
                (name,),
            ).fetchone()
            assert rows is not None
            assert parts is not None
            out[name] = (int(rows[0]), int(size) + int(parts[0]))
        return out


def run(contacts: int, bots: int, sessions: int, messages: int, redis_url: str | None) -> None:
    reset(redis_url)
    upgrade(DB_URL)
    fake = FakeTelegram()
    clock = ManualClock()
    with serve(fake.app) as server:
        settings = Settings(
            database_url=DB_URL,
            redis_url=redis_url,
            broker_url=None,
            telegram_api_base=server.url,
        )
        runtime = Runtime.build(settings, clock=clock)
        org_id, bot_ids = bots_with_campaign(runtime, clock, bots, CAMPAIGN, 2000)
        scheduler = scheduler_of(runtime, clock)
        before = sizes()
        cpu0 = time.process_time()
        for burst in range(sessions):
            for n in range(messages):
                kind = EventType.USER_MESSAGE if n % 2 == 0 else EventType.BOT_MESSAGE
                events = [
                    ActivityEvent(
                        f"s{burst}m{n}u{u}", kind, bot_ids[u % bots], str(500_000 + u), clock.now()
                    )
                    for u in range(contacts)
                ]
                for start in range(0, contacts, 500):
                    runtime.record(org_id, events[start : start + 500])
                clock.advance(timedelta(seconds=20))
            # The silence: threshold, step, its send; then hours of quiet before the next burst.
            for _ in range(3):
                clock.advance(timedelta(minutes=6))
                while scheduler.run_once():
                    pass
            clock.advance(timedelta(hours=3))
            scheduler.maintain(clock.now())
        scheduler.maintain(clock.now() + timedelta(seconds=5))
        cpu = time.process_time() - cpu0
        runtime.close()
    after = sizes()
    sent = len(fake.calls_to("sendMessage"))
    mode = "redis (write-behind)" if redis_url else "sql activity store"
    print(f"mode: {mode}; {contacts} contacts, {sessions} bursts of {messages} events, {sent} sent")
    print(f"{'table':28} {'rows/contact':>13} {'bytes/contact':>14}")
    rows_total = bytes_total = 0.0
    for name in sorted(after):
        rows = (after[name][0] - before.get(name, (0, 0))[0]) / contacts
        size = (after[name][1] - before.get(name, (0, 0))[1]) / contacts
        if rows <= 0 and size <= 0:
            continue
        rows_total += rows
        bytes_total += size
        print(f"{name:28} {rows:>13.2f} {size:>14,.0f}")
    print(f"{'total':28} {rows_total:>13.2f} {bytes_total:>14,.0f}")
    print(f"cpu_ms_per_contact_day={cpu * 1000 / contacts:.2f} (this process)")
    key = "redis" if redis_url else "sql"
    print(
        f"{key}_rows_per_contact_day={rows_total:.1f} {key}_bytes_per_contact_day={bytes_total:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 contacts")
    parser.add_argument("--contacts", type=int, default=None)
    parser.add_argument("--bots", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=2, help="bursts per contact-day")
    parser.add_argument("--messages", type=int, default=10, help="events per burst")
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args()
    configure_logging(level=logging.WARNING)
    contacts = args.contacts or (2_000 if args.quick else 20_000)
    for redis_url in (args.redis_url, None):
        run(contacts, args.bots, args.sessions, args.messages, redis_url)
        print()


if __name__ == "__main__":
    main()
