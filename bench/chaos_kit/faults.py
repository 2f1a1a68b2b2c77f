"""The faults, one per run (or several at once: `worker_kills+postgres_restart`). Each is a
plan run in a thread while messages are being sent: it sleeps until its moments (seconds
after the first user wrote) and strikes. The bench only ever restarts what it killed, as a
supervisor would; live processes are left alone.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.chaos_kit.services import PrivatePostgres, PrivateRedis
from bench.chaos_kit.topology import Topology


@dataclass
class Stage:
    """What a fault acts on, and when messages are due: `period` is (first, last) in real
    seconds after `t0` (monotonic), the moment the first user wrote."""

    topology: Topology
    postgres: PrivatePostgres
    redis: PrivateRedis
    t0: float
    period: tuple[float, float]
    rng: random.Random
    worker_kills: int = 10
    scheduler_kills: int = 4
    window: float = 10.0  # seconds a platform fault lasts
    ended_at: float | None = None  # monotonic: when the fault was over (set by `strike`)

    def at(self, fraction: float) -> float:
        first, last = self.period
        return first + (last - first) * fraction

    def sleep_until(self, offset: float) -> None:
        time.sleep(max(0.0, self.t0 + offset - time.monotonic()))


def _kills(stage: Stage, prefix: str, times: int) -> None:
    """SIGKILL a random running process of the kind at random moments (one still starting
    up is not a target: it does no work yet); restart it at once."""
    moments = sorted(stage.rng.uniform(stage.at(-0.05), stage.at(0.95)) for _ in range(times))
    for moment in moments:
        stage.sleep_until(moment)
        targets = stage.topology.ready(prefix) or stage.topology.names(prefix)
        stage.topology.kill(stage.rng.choice(targets))


def kill_workers(stage: Stage) -> None:
    _kills(stage, "worker-", stage.worker_kills)


def kill_schedulers(stage: Stage) -> None:
    _kills(stage, "scheduler-", stage.scheduler_kills)


def restart_redis(stage: Stage) -> None:
    """Redis dies (SIGKILL) in the thick of the sends and comes back empty 2 s later."""
    stage.sleep_until(stage.at(0.4))
    stage.redis.kill()
    time.sleep(2)
    stage.redis.start()


def restart_postgres(stage: Stage) -> None:
    """PostgreSQL stops at once (every connection drops) and is back 3 s later."""
    stage.sleep_until(stage.at(0.4))
    stage.postgres.stop("immediate")
    time.sleep(3)
    stage.postgres.start()


def _platform(stage: Stage, mode: str) -> None:
    stage.sleep_until(stage.at(0.25))
    body = {"mode": mode, "seconds": stage.window}
    httpx.post(f"{stage.topology.platform_url}/_control/fault", json=body).raise_for_status()
    time.sleep(stage.window)


def platform_502(stage: Stage) -> None:
    """The platform answers HTML 502 pages (its gateway's) for a window."""
    _platform(stage, "html_502")


def platform_hang(stage: Stage) -> None:
    """The platform accepts requests and never answers them, for a window."""
    _platform(stage, "hang")


def no_fault(stage: Stage) -> None:
    pass


@dataclass(frozen=True)
class Fault:
    strike: Callable[[Stage], None]
    about: str


FAULTS = {
    "worker_kills": Fault(kill_workers, "SIGKILL a working worker at random moments, restart it"),
    "scheduler_kills": Fault(kill_schedulers, "SIGKILL a scheduler at random moments, restart it"),
    "redis_restart": Fault(restart_redis, "Redis killed mid-run, back empty 2 s later"),
    "postgres_restart": Fault(
        restart_postgres, "PostgreSQL stopped (immediate) mid-run, back 3 s later"
    ),
    "platform_502": Fault(platform_502, "the platform answers HTML 502 for 10 s"),
    "platform_hang": Fault(platform_hang, "the platform never answers, for 10 s"),
    "none": Fault(no_fault, "no fault (control run)"),
}


def strike(names: str, stage: Stage) -> None:
    """Run the faults named (`a+b`: at once, each in its own thread) and mark the end."""
    threads = [
        threading.Thread(target=FAULTS[name].strike, args=(stage,), daemon=True)
        for name in names.split("+")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stage.ended_at = time.monotonic()
