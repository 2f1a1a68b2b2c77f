"""Timer benchmark: the real Scheduler firing 1,000 timers/s out of 1,000,000 pending in Redis.

Loads the pending timers through `RedisTimerStore.schedule()`, then runs `Scheduler.run()` in
a thread with the system clock and an executor that records lateness (real execution time
minus `due_at`) and acks. Run:

    .venv/bin/python bench/timers.py [--quick]

The last line printed is `p99_lateness_ms=<x>`.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.clock import SystemClock
from reengage.domain.inactivity import inactivity_timer
from reengage.domain.timer import ClaimedTimer, Timer
from reengage.entrypoints.logging import configure_logging
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.scheduler import Scheduler

REDIS_URL = "redis://127.0.0.1:6379/10"  # tests use 13 and 14 (and flush them)
NAMESPACE = "bench-timers"
RATE = 1_000  # timers becoming due per second
LEAD = 2.0  # seconds between the end of loading and the first due timer
CHUNK = 10_000  # timers per schedule() call (the store sends 1,000 per Lua call)


class LatenessExecutor:
    """Runs nothing: notes how late each claimed timer is, then acks it through the store."""

    def __init__(self, store: RedisTimerStore) -> None:
        self.store = store
        self.lateness_ms: list[float] = []
        self.batches = 0
        self.acked = 0
        self.first: float | None = None
        self.last = 0.0

    def submit(self, claimed: Sequence[ClaimedTimer], now: datetime) -> None:
        for item in claimed:
            executed = time.time()
            self.lateness_ms.append((executed - item.timer.due_at.timestamp()) * 1000)
        self.first = self.first or executed
        self.last = executed
        self.batches += 1
        self.acked += self.store.ack(claimed)


def used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def timer(n: int, due: float) -> Timer:
    """A realistic subject timer for user n of bot 1 (same key and payload shape)."""
    return inactivity_timer(1, f"user-{n}", 1, datetime.fromtimestamp(due, UTC))


def load(store: RedisTimerStore, first: int, dues: Sequence[float]) -> None:
    for start in range(0, len(dues), CHUNK):
        stop = min(start + CHUNK, len(dues))
        store.schedule([timer(first + i, dues[i]) for i in range(start, stop)])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200,000 timers, 10 s (< 60 s)")
    args = parser.parse_args()
    total, run_s = (200_000, 10) if args.quick else (1_000_000, 30)
    due_now = RATE * run_s  # the timers that become due during the run
    configure_logging(level=logging.WARNING)

    raw = redis.Redis.from_url(REDIS_URL)
    store = RedisTimerStore(redis.Redis.from_url(REDIS_URL, decode_responses=True), NAMESPACE)
    sentinel = f"{{{NAMESPACE}:timers}}:built"
    raw.delete(*store.keys, sentinel)
    try:
        mem_before = used_memory(raw)
        began = time.perf_counter()
        # The bulk is far in the future (spread over the next 1..24 hours) ...
        far = total - due_now
        horizon = time.time() + 3600
        load(store, due_now, [horizon + i * (23 * 3600 / far) for i in range(far)])
        # ... and, loaded last so their deadlines start just after loading, RATE per second.
        t0 = time.time() + LEAD
        load(store, 0, [t0 + i / RATE for i in range(due_now)])
        load_s = time.perf_counter() - began
        mem_after = used_memory(raw)
        pending = store.count()
        lead_left = t0 - time.time()
        print(
            f"loaded {pending:,} pending timers in {load_s:.1f} s "
            f"({pending / load_s:,.0f}/s via RedisTimerStore.schedule); "
            f"{due_now:,} due at {RATE:,}/s from {lead_left:+.2f} s"
        )
        if lead_left < 0:
            print("warning: loading the due window overran its lead; expect inflated lateness")
        print(
            f"redis used_memory {mem_before:,} -> {mem_after:,} B: "
            f"{(mem_after - mem_before) / pending:,.0f} B per pending timer"
        )

        store.mark_rebuilt()  # empty registry: maintain() must not try a rebuild
        executor = LatenessExecutor(store)
        scheduler = Scheduler(
            sessions=sessionmaker[Session](),  # never used: the registry is empty
            store=store,
            executor=executor,
            registry={},
            clock=SystemClock(),
            batch=500,
            lease=timedelta(seconds=30),
            poll=timedelta(milliseconds=50),
        )
        stop = threading.Event()
        thread = threading.Thread(target=scheduler.run, args=(stop,), name="scheduler")
        thread.start()
        time.sleep(max(0.0, t0 + run_s + 1.0 - time.time()))  # one second's grace
        stop.set()
        thread.join()

        lateness = executor.lateness_ms
        fired = len(lateness)
        span = (executor.last - executor.first) if executor.first else 0.0
        print(
            f"scheduler: batch={scheduler.batch} poll={scheduler.poll.total_seconds() * 1000:.0f}"
            f" ms; ran {LEAD + run_s + 1:.0f} s; claims with work={executor.batches:,} "
            f"(mean {fired / max(1, executor.batches):.0f} timers)"
        )
        print(f"timers fired: {fired:,} of {due_now:,} due; acked {executor.acked:,}")
        print(f"fired/s: {fired / span if span else 0:,.0f} (first to last execution)")
        print(f"pending after run: {store.count():,} (expected {total - due_now:,})")
        if not lateness:
            print("no timers fired")
            print("p99_lateness_ms=nan")
            return
        print(
            f"lateness ms: min {min(lateness):.1f}  mean {statistics.fmean(lateness):.1f}  "
            f"p50 {percentile(lateness, 0.50):.1f}  p99 {percentile(lateness, 0.99):.1f}  "
            f"max {max(lateness):.1f}"
        )
        print(f"p99_lateness_ms={percentile(lateness, 0.99):.1f}")
    finally:
        raw.delete(*store.keys, sentinel)


if __name__ == "__main__":
    main()
