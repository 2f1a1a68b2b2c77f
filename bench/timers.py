"""Timer benchmark: the real Scheduler firing 1,000 timers/s out of 1,000,000 pending in Redis.

Loads the pending timers through `RedisTimerStore.schedule()`, then runs `Scheduler.run()` in
a thread with the system clock and an executor that records lateness (real execution time
minus `due_at`) and acks. The same run is made on another commit's code (`--baseline`, the
scheduler that polled every 50 ms) and on this one, each in a process of its own, and the two
are printed side by side. Run:

    .venv/bin/python bench/timers.py [--quick] [--pending 10000000]

The last lines printed are `before_p99_lateness_ms=<x>` and `p99_lateness_ms=<x>`.

`--cluster` compares instead this code on one Redis with this code on three logical shards
of a local three-master Redis Cluster (`scripts/redis-cluster`; its nodes from
`REENGAGE_BENCH_REDIS_CLUSTER`, default 127.0.0.1:7001), and ends with
`single_p99_lateness_ms=<x>` and `cluster_p99_lateness_ms=<x>`. One Redis is
`REENGAGE_BENCH_REDIS` (default redis://127.0.0.1:6379/10).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import redis
from redis.cluster import RedisCluster
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.clock import SystemClock
from reengage.domain.inactivity import inactivity_timer
from reengage.domain.timer import ClaimedTimer, Timer
from reengage.entrypoints.logging import configure_logging
from reengage.ports import TimerStore
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.scheduler import Scheduler

if TYPE_CHECKING:  # the baseline's code has no shards: imported where the cluster is used
    from reengage.adapters.redis.shards import SyncClient

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "3389840"  # the scheduler that polled every 50 ms
# Tests use 13 and 14 (and flush them).
REDIS_URL = os.environ.get("REENGAGE_BENCH_REDIS", "redis://127.0.0.1:6379/10")
CLUSTER_URL = f"redis://{os.environ.get('REENGAGE_BENCH_REDIS_CLUSTER', '127.0.0.1:7001')}/0"
SHARDS = 3  # logical shards on the cluster: one per master
NAMESPACE = "bench-timers"
RATE = 1_000  # timers becoming due per second
LEAD = 2.0  # seconds between the end of loading and the first due timer
CHUNK = 10_000  # timers per schedule() call (the store sends 1,000 per Lua call)


class LatenessExecutor:
    """Runs nothing: notes how late each claimed timer is, then acks it through the store."""

    def __init__(self, store: TimerStore) -> None:
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


def used_memory(client: SyncClient) -> int:
    if isinstance(client, RedisCluster):
        info = cast(dict[str, Any], client.info("memory", target_nodes=RedisCluster.PRIMARIES))
        return sum(int(node["used_memory"]) for node in info.values())
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def timer(n: int, due: float) -> Timer:
    """A realistic subject timer for user n of bot 1 (same key and payload shape)."""
    return inactivity_timer(1, f"user-{n}", 1, datetime.fromtimestamp(due, UTC))


def load(store: TimerStore, first: int, dues: Sequence[float]) -> None:
    for start in range(0, len(dues), CHUNK):
        stop = min(start + CHUNK, len(dues))
        store.schedule([timer(first + i, dues[i]) for i in range(start, stop)])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def open_store(mode: str) -> tuple[SyncClient, TimerStore]:
    """This code's timer store: on one Redis, or on `SHARDS` shards of the cluster."""
    if mode == "single":
        raw = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        return raw, RedisTimerStore(raw, NAMESPACE)
    from reengage.adapters.redis.sharded_activity import redis_timers
    from reengage.adapters.redis.shards import Layout, connect

    cluster = connect(CLUSTER_URL, cluster=True)
    return cluster, redis_timers(cluster, Layout(NAMESPACE, SHARDS, cluster=True))


def measure(total: int, run_s: int, mode: str = "single") -> dict[str, float]:
    """Load `total` pending timers, fire RATE/s of them for `run_s` seconds; the figures."""
    due_now = RATE * run_s  # the timers that become due during the run
    if mode == "before":  # the baseline's code: its store as it was
        raw: SyncClient = redis.Redis.from_url(REDIS_URL)
        store: TimerStore = RedisTimerStore(
            redis.Redis.from_url(REDIS_URL, decode_responses=True), NAMESPACE
        )
    else:
        raw, store = open_store(mode)
    clear(raw)
    try:
        mem_before = used_memory(raw)
        began = time.perf_counter()
        # The bulk is far in the future (spread over the next 1..24 hours) ...
        far = total - due_now
        horizon = time.time() + 3600 + LEAD * total / 1_000_000
        load(store, due_now, [horizon + i * (23 * 3600 / far) for i in range(far)])
        # ... and, loaded last so their deadlines start just after loading, RATE per second.
        t0 = time.time() + LEAD
        load(store, 0, [t0 + i / RATE for i in range(due_now)])
        load_s = time.perf_counter() - began
        mem_after = used_memory(raw)
        pending = store.count()
        lead_left = t0 - time.time()
        print(
            f"  loaded {pending:,} pending timers in {load_s:.1f} s "
            f"({pending / load_s:,.0f}/s via RedisTimerStore.schedule); "
            f"{due_now:,} due at {RATE:,}/s from {lead_left:+.2f} s",
            flush=True,
        )
        if lead_left < 0:
            print("  warning: loading the due window overran its lead; lateness is inflated")

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
        cpu_before = time.process_time()
        thread.start()
        time.sleep(max(0.0, t0 + run_s + 1.0 - time.time()))  # one second's grace
        stop.set()
        thread.join()
        cpu_s = time.process_time() - cpu_before
        lateness = executor.lateness_ms or [float("nan")]
        span = (executor.last - executor.first) if executor.first else 0.0
        return {
            "pending": pending,
            "load_s": load_s,
            "bytes_per_timer": (mem_after - mem_before) / pending,
            "fired": len(executor.lateness_ms),
            "due": due_now,
            "claims": executor.batches,
            "claims_per_s": executor.batches / span if span else 0.0,
            "fired_per_s": len(executor.lateness_ms) / span if span else 0.0,
            "left": store.count() - (total - due_now),
            "p50": percentile(lateness, 0.50),
            "p99": percentile(lateness, 0.99),
            "max": max(lateness),
            "cpu_pct": 100 * cpu_s / (LEAD + run_s + 1),
        }
    finally:
        clear(raw)


def clear(raw: SyncClient) -> None:
    for key in list(raw.scan_iter(f"{{{NAMESPACE}*")):
        raw.delete(key)


def run_code(
    label: str, src: Path, total: int, run_s: int, mode: str = "before"
) -> dict[str, float]:
    """This script again, in a process of its own, on the code under `src`."""
    print(f"{label}: {src}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(src)}  # ahead of the installed package
    out = subprocess.run(
        [sys.executable, __file__, "--one", str(total), str(run_s), "--mode", mode],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    lines = out.splitlines()
    for line in lines[:-1]:
        print(line)
    return dict(json.loads(lines[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200,000 timers, 10 s (< 2 min)")
    parser.add_argument("--pending", type=int, help="pending timers (default 1,000,000)")
    parser.add_argument("--baseline", default=BASELINE, help="the commit to compare with")
    parser.add_argument(
        "--cluster", action="store_true", help="one Redis beside three cluster shards"
    )
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="before", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging(level=logging.WARNING)
    if args.one:
        print(json.dumps(measure(*args.one, mode=args.mode)))
        return
    sys.path.insert(0, str(ROOT))
    from bench.baseline import checkout

    total, run_s = (200_000, 10) if args.quick else (args.pending or 1_000_000, 30)
    labels = ("single", "cluster") if args.cluster else ("before", "now")
    if args.cluster:
        before = run_code("one Redis", ROOT / "src", total, run_s, "single")
        now = run_code(f"{SHARDS} shards on a Redis Cluster", ROOT / "src", total, run_s, "cluster")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            src = checkout(args.baseline, Path(tmp)) / "src"
            before = run_code(f"before ({args.baseline})", src, total, run_s)
            now = run_code("now", ROOT / "src", total, run_s, "single")
    rows = [
        ("pending timers", "{:,.0f}", "pending"),
        ("load s", "{:.1f}", "load_s"),
        ("Redis B per pending timer", "{:,.0f}", "bytes_per_timer"),
        ("fired (of due)", "{:,.0f}", "fired"),
        ("left unfired", "{:,.0f}", "left"),
        ("claims with work", "{:,.0f}", "claims"),
        ("claims/s", "{:,.0f}", "claims_per_s"),
        ("fired/s", "{:,.0f}", "fired_per_s"),
        ("lateness p50 ms", "{:.1f}", "p50"),
        ("lateness p99 ms", "{:.1f}", "p99"),
        ("lateness max ms", "{:.1f}", "max"),
        ("bench process CPU %", "{:.0f}", "cpu_pct"),
    ]
    print(f"\n{'':28}{labels[0]:>12}{labels[1]:>12}")
    for name, fmt, key in rows:
        print(f"{name:28}{fmt.format(before.get(key, float('nan'))):>12}{fmt.format(now[key]):>12}")
    if args.cluster:
        print(f"single_p99_lateness_ms={before['p99']:.1f}")
        print(f"cluster_p99_lateness_ms={now['p99']:.1f}")
    else:
        print(f"before_p99_lateness_ms={before['p99']:.1f}")
        print(f"p99_lateness_ms={now['p99']:.1f}")


if __name__ == "__main__":
    main()
