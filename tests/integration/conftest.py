"""Real Celery workers on a real Redis broker, for the tests that need them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BROKER_URL, REDIS_URL, TEST_SECRET_KEY

Spawn = Callable[..., subprocess.Popen[bytes]]
Scrape = dict[str, float]


def wait_until(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def scrape(port: int, path: str = "/metrics") -> Scrape:
    """A process' `/metrics`, each sample by name and labels
    (`name[('label', 'value'), ...]`); empty while the port does not answer. A page that does
    not parse is fetched again (at most twice): prometheus_client's multiprocess mode reads
    its children's files while they write, and can serve a torn line now and then (a
    Prometheus server's next scrape is whole again)."""
    for attempt in range(3):
        try:
            text = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).text
        except httpx.TransportError:
            return {}
        try:
            return {
                sample.name + str(sorted(sample.labels.items())): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            }
        except ValueError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def broker() -> Iterator[str]:
    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    yield BROKER_URL
    client.flushdb()
    client.close()


@pytest.fixture
def spawn_process(pg_db: str, broker: str, tmp_path: Path) -> Iterator[Spawn]:
    """`reengage <command> [args]` as a process of its own on the test's databases, killed
    (with its children) after the test; `settings` are extra REENGAGE_* variables."""
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []
    env = {
        **os.environ,
        "REENGAGE_DATABASE_URL": pg_db,
        "REENGAGE_REDIS_URL": REDIS_URL,
        "REENGAGE_BROKER_URL": broker,
        "REENGAGE_DEFAULT_INACTIVITY_THRESHOLD": "600",
        "REENGAGE_SECRET_KEY": TEST_SECRET_KEY,
        "REENGAGE_MEDIA_DIR": str(tmp_path / "media"),
    }

    def spawn(name: str, args: Sequence[str], **settings: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "reengage.entrypoints.cli", *args],
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


@pytest.fixture
def spawn_worker(spawn_process: Spawn) -> Spawn:
    def spawn(
        name: str,
        queues: str = "timers",
        pool: str = "solo",
        concurrency: int = 1,
        args: Sequence[str] = (),
        **settings: str,
    ) -> subprocess.Popen[bytes]:
        """A worker process; `settings` are extra REENGAGE_* variables (lower case names)."""
        argv = ["worker", "--queues", queues, "--concurrency", str(concurrency), "--pool", pool]
        return spawn_process(name, [*argv, *args], **settings)

    return spawn
