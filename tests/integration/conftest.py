"""Real Celery workers on a real Redis broker, for the tests that need them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import pytest
import redis

from tests.conftest import BROKER_URL, REDIS_URL

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def broker() -> Iterator[str]:
    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    yield BROKER_URL
    client.flushdb()
    client.close()


@pytest.fixture
def spawn_worker(pg_db: str, broker: str, tmp_path: Path) -> Iterator[Spawn]:
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []
    env = {
        **os.environ,
        "REENGAGE_DATABASE_URL": pg_db,
        "REENGAGE_REDIS_URL": REDIS_URL,
        "REENGAGE_BROKER_URL": broker,
        "REENGAGE_DEFAULT_INACTIVITY_THRESHOLD": "600",
    }

    def spawn(
        name: str,
        queues: str = "timers",
        pool: str = "solo",
        concurrency: int = 1,
        args: Sequence[str] = (),
        **settings: str,
    ) -> subprocess.Popen[bytes]:
        """A worker process; `settings` are extra REENGAGE_* variables (lower case names)."""
        log = (tmp_path / f"{name}.log").open("wb")
        logs.append(log)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reengage.entrypoints.cli",
                "worker",
                "--queues",
                queues,
                "--concurrency",
                str(concurrency),
                "--pool",
                pool,
                *args,
            ],
            env={**env, **{f"REENGAGE_{k.upper()}": v for k, v in settings.items()}},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for log in logs:
        log.close()
