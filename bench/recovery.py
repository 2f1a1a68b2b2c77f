"""Recovery throughput: episodes started and deliveries sent per second, end to end.

PostgreSQL + Redis (production mode), the real scheduler with in-process execution, the real
Telegram adapter against the fake Bot API on 127.0.0.1 (with its pacing: 30 messages/s per
bot, 1 per chat). N users across B bots go quiet; the clock jumps past the threshold and the
first step is due at once. Two scenarios, each side by side with a baseline whose worker
sleeps through every wait for a send slot: A, many bots and one block per step (measures the
pipeline); B, one bot and two blocks per step (the 1 s gap per chat binds). The last line is
`episodes_per_s=<A> deliveries_per_s=<A> paced_ratio=<B: ours / baseline>`, after
`cpu_ms_per_user=<A: this process (the fake's thread left out) + PostgreSQL + Redis>
sql_statements_per_user=<A>`. Run:

    .venv/bin/python bench/recovery.py [--quick]
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
from sqlalchemy import event, func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cpu import store_cpu_s, thread_cpu_s
from bench.shop import bots_with_campaign, scheduler_of
from reengage.adapters.channels import telegram
from reengage.adapters.clock import ManualClock
from reengage.adapters.db.migrate import upgrade
from reengage.adapters.db.models import Delivery, Episode
from reengage.config import Settings
from reengage.domain.activity import ActivityEvent, EventType
from reengage.entrypoints.logging import configure_logging
from reengage.runtime import Runtime
from reengage.testing.server import serve
from reengage.testing.telegram import FakeTelegram

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_URL = "postgresql://postgres@127.0.0.1:5432/reengage_bench_recovery"
REDIS_URL = "redis://127.0.0.1:6379/10"


def reset() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS reengage_bench_recovery WITH (FORCE)")
        conn.execute("CREATE DATABASE reengage_bench_recovery")
    redis.Redis.from_url(REDIS_URL).flushdb()


def count(runtime: Runtime, model: type[Episode] | type[Delivery], **where: str) -> int:
    with runtime.sessions() as s:
        stmt = select(func.count()).select_from(model)
        for name, value in where.items():
            stmt = stmt.where(getattr(model, name) == value)
        return int(s.scalar(stmt) or 0)


def campaign(blocks: int) -> dict[str, object]:
    texts = [{"kind": "text", "text": f"Volte! ({i + 1}/{blocks})"} for i in range(blocks)]
    return {"threshold": "10m", "steps": [{"schedule": "1m", "blocks": texts}]}


def run(
    users: int, bots: int, *, blocks: int = 1, sleep_through_pacing: bool
) -> tuple[float, float, int, float, float]:
    """One pass on a fresh database; returns (episodes/s, deliveries/s, messages sent, CPU
    milliseconds per user of this process — the fake platform's thread left out — and of
    PostgreSQL and Redis, SQL statements per user)."""
    reset()
    upgrade(DB_URL)
    fake = FakeTelegram()
    clock = ManualClock()
    original = telegram.take_slot
    if sleep_through_pacing:
        # The baseline: the worker sleeps through every wait for a send slot.
        telegram.take_slot = lambda *a, **kw: original(  # type: ignore[assignment]
            *a, **{**kw, "defer_over": None, "sleep": time.sleep}
        )
    try:
        with serve(fake.app) as server:
            settings = Settings(
                database_url=DB_URL,
                redis_url=REDIS_URL,
                broker_url=None,
                telegram_api_base=server.url,
            )
            runtime = Runtime.build(settings, clock=clock)
            org_id, bot_ids = bots_with_campaign(runtime, clock, bots, campaign(blocks), 1000)
            events = [
                ActivityEvent(
                    f"e{u}",
                    EventType.USER_MESSAGE,
                    bot_ids[u % bots],
                    str(100_000 + u),
                    clock.now(),
                )
                for u in range(users)
            ]
            for start in range(0, users, 500):
                runtime.record(org_id, events[start : start + 500])
            scheduler = scheduler_of(runtime, clock)
            scheduler.run_once()
            clock.advance(timedelta(minutes=11, seconds=1))  # past threshold + first step
            due = clock.now()
            started = time.monotonic()
            assert server.native_id is not None
            cpu0 = time.process_time() - thread_cpu_s(server.native_id) + store_cpu_s()
            statements = [0]

            @event.listens_for(runtime.engine, "before_cursor_execute")
            def _count(*_: object) -> None:
                statements[0] += 1

            def tick() -> None:  # from the due time on, the clock follows real time
                clock.set(due + timedelta(seconds=time.monotonic() - started))

            while count(runtime, Episode) < users:
                tick()
                scheduler.run_once()
            episodes_s = time.monotonic() - started
            while count(runtime, Delivery, status="sent") < users * blocks:
                tick()
                if not scheduler.run_once():
                    time.sleep(0.01)
            total_s = time.monotonic() - started
            cpu = time.process_time() - thread_cpu_s(server.native_id) + store_cpu_s() - cpu0
            event.remove(runtime.engine, "before_cursor_execute", _count)
            runtime.close()
    finally:
        telegram.take_slot = original
    sent = len(fake.calls_to("sendMessage"))
    assert sent == users * blocks, f"{sent} messages for {users} users"
    return users / episodes_s, sent / total_s, sent, cpu * 1000 / users, statements[0] / users


def line(name: str, r: tuple[float, float, int, float, float], digits: int = 0) -> str:
    return f"{name:36} {r[0]:>11,.0f} {r[1]:>13,.{digits}f} {r[3]:>12.1f} {r[4]:>9.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer users")
    args = parser.parse_args()
    configure_logging(level=logging.WARNING)
    header = f"{'':36} {'episodes/s':>11} {'deliveries/s':>13} {'cpu ms/user':>12} {'SQL/user':>9}"
    base_name, ours_name = "baseline (worker sleeps for slots)", "reengage (slot waits handed back)"

    users, bots = (1_000, 10) if args.quick else (5_000, 20)
    print(f"A. {users} users on {bots} bots, 1 block per step (pacing rarely binds)")
    print(header)
    print(line(base_name, run(users, bots, sleep_through_pacing=True)))
    ours = run(users, bots, sleep_through_pacing=False)
    print(line(ours_name, ours))

    paced_users = 60 if args.quick else 200
    print(f"B. {paced_users} users on 1 bot, 2 blocks per step (1 message/s per chat binds)")
    print(header)
    base_b = run(paced_users, 1, blocks=2, sleep_through_pacing=True)
    print(line(base_name, base_b, 1))
    ours_b = run(paced_users, 1, blocks=2, sleep_through_pacing=False)
    print(line(ours_name, ours_b, 1))
    print(f"cpu_ms_per_user={ours[3]:.1f} sql_statements_per_user={ours[4]:.1f}")
    print(
        f"episodes_per_s={ours[0]:.0f} deliveries_per_s={ours[1]:.0f} "
        f"paced_ratio={ours_b[1] / base_b[1]:.2f}"
    )


if __name__ == "__main__":
    main()
