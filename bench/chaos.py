"""Chaos bench: the production topology under faults. Run from the repository root:

    .venv/bin/python bench/chaos.py [--quick] [--faults worker_kills,redis_restart,...]

Each run: a freshly migrated database on a private PostgreSQL cluster (port 55432), an empty
private Redis (16379), the API, 2 schedulers, 2 Celery workers and the fake Telegram Bot API
as separate processes, time 10x faster; users write once and stay silent; one fault. Printed
per run: expected, sent, duplicates, lost_unsent, ambiguous, kills_during_http, 429s, and
whether every process recovered by itself. Last line: the sums over every run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: its parts are the `bench.chaos_kit` package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chaos_kit.faults import FAULTS
from bench.chaos_kit.run import Options, Result, run
from bench.chaos_kit.services import PrivatePostgres, PrivateRedis

DEFAULT_FAULTS = [f for f in FAULTS if f != "none"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 users per run instead of 1,000")
    parser.add_argument("--users", type=int, help="users per run (overrides --quick)")
    parser.add_argument(
        "--faults",
        default=",".join(DEFAULT_FAULTS),
        help="comma-separated runs; a+b strikes both in one run",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    faults = args.faults.split(",")
    unknown = [f for f in faults for part in f.split("+") if part not in FAULTS]
    if unknown:
        parser.error(f"unknown faults {unknown}; known: {', '.join(FAULTS)}")
    users = args.users or (200 if args.quick else 1_000)
    options = Options(
        users=users,
        seed=args.seed,
        writes_over=5.0 if args.quick else 20.0,
        settle_within=60.0 if args.quick else 300.0,
    )
    logs = Path(tempfile.mkdtemp(prefix="reengage-chaos-logs-"))
    print(f"{users} users on {options.bots} Telegram bots per run, time x{options.speed:g}")
    print(f"process logs: {logs}")
    started = time.monotonic()
    postgres, redis = PrivatePostgres(), PrivateRedis()
    results: list[Result] = []
    try:
        postgres.init()
        for fault in faults:
            result = run(fault, options, postgres, redis, logs)
            results.append(result)
            report(result)
    finally:
        redis.destroy()
        postgres.destroy()
    print(f"total {time.monotonic() - started:.0f} s")
    print(
        f"duplicates={sum(r.figures.duplicates for r in results)} "
        f"lost_unsent={sum(r.figures.lost_unsent for r in results)} "
        f"ambiguous={sum(r.figures.ambiguous for r in results)}"
    )
    return 0


def report(result: Result) -> None:
    f = result.figures
    requested = (
        "" if f.ambiguous_requested is None else f"; requested_at set {f.ambiguous_requested}"
    )
    about = " + ".join(FAULTS[part].about for part in result.fault.split("+"))
    print(f"\n== {result.fault}: {about} ({result.seconds:.0f} s)")
    print(
        f"expected={f.expected} sent={f.sent} duplicates={f.duplicates} "
        f"lost_unsent={f.lost_unsent} ambiguous={f.ambiguous} "
        f"(platform got {f.ambiguous_delivered}, did not {f.ambiguous_undelivered}{requested})"
    )
    print(
        f"kills={f.kills} kills_during_http={f.kills_during_http} "
        f"(requests cut {f.requests_cut}) 429s={f.rate_limited} "
        f"answered_by_fault={f.faulted_requests} "
        f"recovered={'yes' if result.recovered else 'no'} ended={result.ended}"
    )
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in result.timeline.items()))
    print("rows: " + ", ".join(f"{k}={v}" for k, v in sorted(f.states.items())))
    retried = {k: v for k, v in sorted(f.attempts.items()) if k > 1}
    if retried:
        print("rows claimed more than once (attempts: rows): " + str(retried))
    if f.lost_states:
        print("lost_unsent rows: " + ", ".join(f"{k}={v}" for k, v in f.lost_states.items()))
    notes = [f"{c.name} exited by itself (code {c.returncode})" for c in result.crashes]
    notes += [f"{name} does not work any more" for name in result.stalled]
    if f.unexpected:
        notes.append(f"{f.unexpected} accepted messages nobody should have received")
    if not result.api_ready:
        notes.append("the API's /readyz is not 200")
    for line in notes + f.details:
        print(f"  ! {line}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
