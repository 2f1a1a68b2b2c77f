"""One run: a fresh database and an empty Redis, the topology, the workload, one fault, and
the count of what reached the platform.

A run ends when every expected message is accounted for (accepted by the platform, or its
delivery row settled) with no row pending, no episode running and no request in flight
(`settled`); or, once the fault is over and no request is in flight, when nothing has moved
for `idle` seconds (no message accepted, no row changed state or attempt count: what is left
is stuck), or `settle_within` seconds later at most (what is left is late, and counted lost).
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from celery import Celery

from bench.chaos_kit import tally
from bench.chaos_kit.faults import Stage, strike
from bench.chaos_kit.services import BENCH_SECRET_KEY, PrivatePostgres, PrivateRedis
from bench.chaos_kit.topology import Crash, Topology
from bench.chaos_kit.workload import Workload, create_org, sending_period, set_up, write_once
from reengage.adapters.db.migrate import upgrade

SETTLED = "settled"


@dataclass(frozen=True)
class Options:
    users: int
    bots: int = 5
    speed: float = 10.0
    writes_over: float = 5.0  # real seconds (at least) over which users write
    # The timer lease, in real seconds. The default 30 s would be 3 s of real time at x10,
    # shorter than a slow request; the bench sets the lease to this many real seconds.
    lease: float = 15.0
    # A message not delivered this long (real seconds) after the fault is over (and no
    # request is in flight) counts as lost: the run ends there.
    settle_within: float = 60.0
    worker_kills: int = 10
    scheduler_kills: int = 4
    platform_port: int = 18081
    api_port: int = 18080
    seed: int = 1

    def write_window(self, fault: str) -> float:
        """Users write over this many seconds: at least `writes_over`, and 2 s per kill, so
        that messages are due all through the kills (a restarted process boots for seconds)."""
        kills = {"worker_kills": self.worker_kills, "scheduler_kills": self.scheduler_kills}
        return max([self.writes_over] + [2.0 * kills.get(f, 0) for f in fault.split("+")])

    @property
    def idle(self) -> float:
        """Nothing moved for this long after the fault: what is left is stuck. (A timer lost
        with a killed process comes back after the lease.)"""
        return self.lease + 10


@dataclass
class Result:
    fault: str
    figures: tally.Figures
    seconds: float
    ended: str  # SETTLED, or why the run ended before
    crashes: list[Crash]
    stalled: list[str] = field(default_factory=list)  # live processes that did no work after
    api_ready: bool = True
    timeline: dict[str, float] = field(default_factory=dict)  # seconds each phase took

    @property
    def settled(self) -> bool:
        """Every expected message accounted for, nothing left pending."""
        return self.ended == SETTLED

    @property
    def recovered(self) -> bool:
        """No process exited by itself; after the run each worker runs tasks, no scheduler
        fails its rounds, and the API is ready."""
        return not self.crashes and not self.stalled and self.api_ready


def environment(db_url: str, redis: PrivateRedis, options: Options) -> dict[str, str]:
    epoch = datetime.now(UTC).isoformat()  # every process agrees on the accelerated time
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("REENGAGE_")},
        "PYTHONUNBUFFERED": "1",
        # As deployed: JSON logs (the console renderer spends seconds drawing each traceback).
        "REENGAGE_LOG_JSON": "true",
        "REENGAGE_DATABASE_URL": db_url,
        "REENGAGE_SECRET_KEY": BENCH_SECRET_KEY,
        "REENGAGE_REDIS_URL": f"{redis.url}/0",
        "REENGAGE_BROKER_URL": f"{redis.url}/1",
        "REENGAGE_TELEGRAM_API_BASE": f"http://127.0.0.1:{options.platform_port}",
        "REENGAGE_CLOCK_SPEED": str(options.speed),
        "REENGAGE_CLOCK_EPOCH": epoch,
        "REENGAGE_TIMER_LEASE": f"{round(options.lease * options.speed)}s",
    }


def run(
    fault: str, options: Options, postgres: PrivatePostgres, redis: PrivateRedis, logs: Path
) -> Result:
    started = time.monotonic()
    db_url = postgres.create_database(f"chaos_{fault.replace('+', '_')}")
    upgrade(db_url)
    redis.kill()
    redis.start()
    env = environment(db_url, redis, options)
    topology = Topology(env, logs / fault, options.platform_port, options.api_port)
    marks = {"database": time.monotonic()}
    try:
        topology.start()
        marks["processes"] = time.monotonic()
        with httpx.Client(base_url=topology.api_url, timeout=30) as api:
            workload = set_up(api, create_org(db_url), options.bots, options.users)
            marks["bots and campaigns"] = time.monotonic()
            window = options.write_window(fault)
            stage = Stage(
                topology,
                postgres,
                redis,
                time.monotonic(),
                sending_period(options.speed, window),
                random.Random(f"{options.seed}:{fault}"),
                options.worker_kills,
                options.scheduler_kills,
            )
            striking = threading.Thread(target=strike, args=(fault, stage), daemon=True)
            striking.start()
            write_once(api, workload, window)
        ended = _watch(stage, workload, db_url, options)
        marks["writes to end"] = time.monotonic()
        striking.join()
        result = _result(fault, topology, workload, db_url, started, ended)
        previous = started
        for name, at in marks.items():
            result.timeline[name], previous = at - previous, at
        topology.supervise()
        result.crashes = list(topology.crashes)
        result.stalled = _stalled(topology, env["REENGAGE_BROKER_URL"])
        result.api_ready = _ready(topology.api_url)
        return result
    finally:
        topology.stop()


def _watch(stage: Stage, workload: Workload, db_url: str, options: Options) -> str:
    """Supervise until the run ends (see the module); returns why it ended."""
    topology = stage.topology
    deadline = stage.t0 + stage.period[1] + options.settle_within + 300  # a fault that hangs
    progress: object = None
    moved = done_since = time.monotonic()
    calm_since: float | None = None  # the fault is over and no request is in flight
    with httpx.Client(base_url=topology.platform_url, timeout=10) as platform:
        while time.monotonic() < deadline:
            topology.supervise()
            now = time.monotonic()
            seen, in_flight, complete = _look(platform, workload, db_url)
            if seen != progress:
                progress, moved = seen, now
            calm = stage.ended_at is not None and not in_flight
            calm_since = (calm_since or now) if calm else None
            if not complete or calm_since is None:
                done_since = now
            elif now - done_since >= 3:  # and stays so, for late duplicates to show
                return SETTLED
            if calm_since is not None and now - max(moved, calm_since) > options.idle:
                return f"nothing moved for {options.idle:.0f} s"
            if calm_since is not None and now - calm_since > options.settle_within:
                return f"cut {options.settle_within:.0f} s after the fault"
            time.sleep(1)
    return "timeout"


def _look(platform: httpx.Client, workload: Workload, db_url: str) -> tuple[object, bool, bool]:
    """(what has moved so far, whether a request is in flight at the platform, whether every
    expected message is accounted for with nothing left to do)."""
    try:
        got = tally.accepted(platform)
        in_flight = platform.get("/_control/open").json()["open"] > 0
        rows = tally.read_rows(db_url, workload)
    except Exception:  # PostgreSQL may be down: the fault is the point
        return "unreachable", True, False
    accounted = all(m in got or rows.settled(m) for m in workload.expected())
    idle = rows.pending() == 0 and rows.running_episodes == 0 and not in_flight
    return (got.total(), rows.progress()), in_flight, accounted and idle


def _stalled(topology: Topology, broker_url: str) -> list[str]:
    """The live processes that do not work: a worker that, once booted, runs none of the no-op
    tasks sent for 15 s; a scheduler that fails its rounds."""
    stalled, waiting = [], set()
    for name in topology.names("worker-"):
        try:
            topology.wait_ready(name, timeout=30)
            waiting.add(name)
        except TimeoutError:
            stalled.append(name)  # never came up
    offsets = {name: topology.log_size(name) for name in topology.procs}
    app = Celery("probe", broker=broker_url)
    started, now = time.monotonic(), datetime.now(UTC).isoformat()
    try:
        while waiting and time.monotonic() < started + 15:
            for _ in range(4):
                app.send_task("engine.fire_timers", args=[[], now], queue="timers")
            time.sleep(0.5)
            waiting = {
                n for n in waiting if "succeeded in" not in topology.log_since(n, offsets[n])
            }
    finally:
        app.close()
    time.sleep(max(0.0, started + 2 - time.monotonic()))  # schedulers: 2 s of rounds at least
    failing = [
        n
        for n in topology.names("scheduler-")
        if "round_failed" in topology.log_since(n, offsets[n])
    ]
    return sorted([*stalled, *waiting]) + failing


def _ready(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _result(
    fault: str,
    topology: Topology,
    workload: Workload,
    db_url: str,
    started: float,
    ended: str,
) -> Result:
    with httpx.Client(base_url=topology.platform_url, timeout=30) as platform:
        got = tally.accepted(platform)
        requests = platform.get("/_control/requests").json()
        refused = platform.get("/_control/refused").json()
    rows = tally.read_rows(db_url, workload)
    figures = tally.count(workload, got, rows, topology.kills, requests, refused)
    seconds = time.monotonic() - started
    return Result(fault, figures, seconds, ended, crashes=[])
