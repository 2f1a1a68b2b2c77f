"""Write-behind in a running scheduler: how fast activity reaches PostgreSQL, side by side with
a baseline commit of the code.

N new subjects' activity (two messages each, four bots) is recorded in Redis through the
library (`Runtime.record`); then a scheduler, run as `reengage scheduler` runs it (`run_until`:
built, its heap settled, run; embedded, nothing due), runs until Redis holds nothing
unwritten. Timed:
from its start until `unflushed()` is 0. Each run is a process of its own on the code under
test (`PYTHONPATH`), on a fresh database and Redis db; the runs alternate between the
baseline and this code. Run from the repository root:

    .venv/bin/python bench/write_behind.py [--quick] [--baseline REF]

It prints each run (with the CPU per subject of the scheduler's process and of PostgreSQL and
Redis together), then min / median / max per code, and last
`drain_subjects_per_s=<ours, median> ratio=<ours / baseline>`. `--quick`: 10,000 subjects,
one run each (under a minute); the full run 30,000, three each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.baseline import checkout  # noqa: E402
from bench.cpu import process_cpu_s, store_cpu_s  # noqa: E402

BASELINE = "1109c2c"  # the scheduler flushed in its own loop, 250 ms per second at most
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "reengage_bench_write_behind"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/4"  # a db no other bench or test uses
BOTS = 4
BATCH = 500


def child(n: int) -> None:
    """One run, on the code the interpreter finds: print its seconds, the scheduler process'
    CPU seconds and PostgreSQL's and Redis' (`bench.cpu`)."""
    import logging

    import psycopg
    import redis

    from reengage.adapters.db.migrate import upgrade
    from reengage.config import Settings
    from reengage.domain.activity import ActivityEvent, ChannelKind, EventType
    from reengage.entrypoints.logging import configure_logging
    from reengage.entrypoints.scheduler import main as scheduler_main
    from reengage.entrypoints.scheduler.main import build_scheduler
    from reengage.runtime import Runtime
    from reengage.services.tenancy import create_bot, create_organization

    configure_logging(level=logging.WARNING)
    run_until = getattr(scheduler_main, "run_until", None)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    upgrade(DB_URL)
    redis.Redis.from_url(REDIS_URL).flushdb()
    settings = Settings(database_url=DB_URL, redis_url=REDIS_URL, broker_url=None)
    rt = Runtime.build(settings)
    try:
        now = rt.clock.now()
        org = create_organization(rt.sessions, "bench", now).org_id
        bots = [
            create_bot(
                rt.sessions,
                rt.credentials,
                org,
                name=f"bot{i}",
                channel=ChannelKind.TELEGRAM,
                now=now,
                inactivity_threshold=timedelta(minutes=10),
            ).id
            for i in range(BOTS)
        ]
        while not rt.activity.restore(now):  # Redis knows the (empty) database's subjects
            pass
        events = [
            ActivityEvent(f"e{k}-{i}", EventType.USER_MESSAGE, bots[i % BOTS], f"u{i}", now)
            for k in range(2)
            for i in range(n)
        ]
        for start in range(0, len(events), BATCH):
            rt.record(org, events[start : start + BATCH])
        del events  # a scheduler process holds no such list
        stop = threading.Event()
        began, cpu0, store0 = time.perf_counter(), process_cpu_s(os.getpid()), store_cpu_s()
        if run_until is not None:  # as `reengage scheduler` runs it
            thread = threading.Thread(target=run_until, args=(stop, settings, rt))
        else:  # older code: built, then run
            thread = threading.Thread(target=build_scheduler(settings, rt).run, args=(stop,))
        thread.start()
        while rt.activity.unflushed():
            time.sleep(0.005)
        seconds = time.perf_counter() - began
        cpu, store = process_cpu_s(os.getpid()) - cpu0, store_cpu_s() - store0
        stop.set()
        thread.join()
        with psycopg.connect(DB_URL) as conn:
            row = conn.execute("SELECT count(*), sum(activity_seq) FROM conversation").fetchone()
        written, seqs = row if row else (0, 0)
        if (written, seqs) != (n, 2 * n):
            raise SystemExit(f"expected {n} conversations at version 2, found {written}, {seqs}")
        print(f"seconds={seconds:.3f} cpu_s={cpu:.3f} store_cpu_s={store:.3f}")
    finally:
        rt.close()
        redis.Redis.from_url(REDIS_URL).flushdb()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_s: float  # the scheduler's process
    store_cpu_s: float  # PostgreSQL + Redis


def run(tree: Path, n: int) -> Run:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{ROOT}"}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(n)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures = dict(pair.split("=") for pair in out.strip().splitlines()[-1].split())
    return Run(*(float(figures[k]) for k in ("seconds", "cpu_s", "store_cpu_s")))


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10,000 subjects, one run each")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    n, runs = (10_000, 1) if args.quick else (30_000, 3)
    rates: dict[str, list[float]] = {"baseline": [], "ours": []}
    cpu: dict[str, list[float]] = {"baseline": [], "ours": []}  # µs per subject
    store: dict[str, list[float]] = {"baseline": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"baseline": checkout(args.baseline, Path(tmp)), "ours": ROOT}
        print(
            f"{n:,} new subjects (2 messages each, {BOTS} bots) recorded in Redis, then written "
            f"to PostgreSQL by a running scheduler; baseline {args.baseline}"
        )
        for i in range(runs):
            for label, tree in trees.items():
                r = run(tree, n)
                rates[label].append(n / r.seconds)
                cpu[label].append(r.cpu_s / n * 1e6)
                store[label].append(r.store_cpu_s / n * 1e6)
                print(
                    f"run {i + 1} {label:<8} {r.seconds:6.2f} s  {n / r.seconds:8,.0f} subjects/s"
                    f"  CPU per subject: scheduler {cpu[label][-1]:5.0f} µs, "
                    f"PostgreSQL + Redis {store[label][-1]:5.0f} µs"
                )
    for label, values in rates.items():
        print(
            f"{label:<8} subjects/s min / median / max: {spread(values)}; CPU µs per subject, "
            f"scheduler {spread(cpu[label])}, PostgreSQL + Redis {spread(store[label])}"
        )
    ours, base = statistics.median(rates["ours"]), statistics.median(rates["baseline"])
    print(f"drain_subjects_per_s={ours:.0f} ratio={ours / base:.2f}")


if __name__ == "__main__":
    main()
