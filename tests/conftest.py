"""Shared fixtures: real PostgreSQL (migrated once), SQLite files, real Redis, a manual clock."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import redis
import structlog
from prometheus_client import REGISTRY
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.migrate import upgrade
from reengage.adapters.db.models import Base
from reengage.adapters.redis.shards import SyncClient
from reengage.config import Settings
from reengage.ports import TimerStore
from reengage.runtime import Runtime
from reengage.timers.scheduler import Scheduler

PG_ADMIN_URL = os.environ.get(
    "REENGAGE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PG_DB = f"reengage_test_{os.getpid()}"
PG_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_DB}"
# Parallel runs (pytest -n N) give each worker its own pair of Redis databases, counting down.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def _redis_db(variable: str, default: str) -> str:
    server, db = os.environ.get(variable, default).rsplit("/", 1)
    return f"{server}/{int(db) - 2 * WORKER}"


REDIS_URL = _redis_db("REENGAGE_TEST_REDIS", "redis://127.0.0.1:6379/13")
BROKER_URL = _redis_db("REENGAGE_TEST_BROKER", "redis://127.0.0.1:6379/14")

# A local Redis Cluster (`scripts/redis-cluster` starts one): its nodes, comma-separated.
CLUSTER_NODES = os.environ.get(
    "REENGAGE_TEST_REDIS_CLUSTER", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
)
CLUSTER_URL = f"redis://{CLUSTER_NODES.split(',')[0]}/0"

DATABASES = ["sqlite", "postgresql"]
# The secret key of the processes the tests start on PostgreSQL (the default one is refused).
TEST_SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def database_at(name: str, revision: str) -> Iterator[str]:
    """A PostgreSQL database `name` of its own, migrated up to `revision`, dropped after."""
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{name}"')
    upgrade(url, revision)
    yield url
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test run, migrated once with Alembic."""
    _admin(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{PG_DB}"')
    # A test database need not survive a crash of the machine: commits do not wait for disk.
    _admin(f'ALTER DATABASE "{PG_DB}" SET synchronous_commit = off')
    upgrade(PG_URL)
    yield PG_URL
    _admin(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _empty(url: str) -> None:
    """Delete every row and restart the ids (on tables this small, several times faster than
    TRUNCATE, which makes new files for each table)."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(f'DELETE FROM "{table.name}"')  # type: ignore[arg-type]
        sequences = conn.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
        )
        for (name,) in sequences.fetchall():
            conn.execute(f'ALTER SEQUENCE "{name}" RESTART')  # type: ignore[arg-type]


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated, empty database: SQLite and PostgreSQL."""
    return fresh_database(request.param, request, tmp_path)


@pytest.fixture
def pg_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty PostgreSQL database (for behaviour that needs real concurrency)."""
    return fresh_database("postgresql", request, tmp_path)


def fresh_database(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        path = tmp_path / "reengage.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    _empty(url)
    return url


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def cluster_client() -> Iterator[RedisCluster]:
    """A client of the local three-master Redis Cluster, emptied before and after. Without
    one (and without `REENGAGE_TEST_REDIS_CLUSTER` asking for one) the test is skipped."""
    try:
        client = RedisCluster.from_url(CLUSTER_URL, decode_responses=True)
    except (redis.RedisError, RedisClusterException):
        if "REENGAGE_TEST_REDIS_CLUSTER" in os.environ:
            raise
        pytest.skip(f"no Redis Cluster at {CLUSTER_NODES} (scripts/redis-cluster starts one)")
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    client.close()


@dataclass
class HotRedis:
    """Where a runtime keeps its hot state: one Redis, or three shards on a Redis Cluster."""

    kind: str
    client: SyncClient

    @property
    def settings(self) -> dict[str, object]:
        if self.kind == "redis":
            return {"redis_url": REDIS_URL}
        return {"redis_url": CLUSTER_URL, "redis_cluster": True, "redis_shards": 3}

    def empty(self) -> None:
        """Lose every key (a restart without persistence)."""
        if isinstance(self.client, RedisCluster):
            self.client.flushall(target_nodes=RedisCluster.PRIMARIES)
        else:
            self.client.flushdb()


@pytest.fixture(params=["redis", "cluster"])
def hot_redis(request: pytest.FixtureRequest) -> HotRedis:
    """The hot state on one Redis, then on a Redis Cluster (emptied before and after)."""
    kind: str = request.param
    return HotRedis(kind, request.getfixturevalue(f"{kind}_client"))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_runtime(
    clock: ManualClock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Runtime]]:
    """Build runtimes on a given database and timer store, closed after the test."""
    built: list[Runtime] = []
    media = tmp_path_factory.mktemp("media")

    def build(url: str, timers: TimerStore | None = None, **settings: object) -> Runtime:
        values: dict[str, object] = {
            "database_url": url,
            "redis_url": None,
            "broker_url": None,
            "default_inactivity_threshold": timedelta(minutes=10),
            "secret_key": TEST_SECRET_KEY,  # the one the processes of a test are given
            "media_dir": media,  # the test's own, shared by its runtimes
        }
        values.update(settings)
        runtime = Runtime.build(Settings(**values), clock=clock, timers=timers)  # type: ignore[arg-type]
        built.append(runtime)
        return runtime

    yield build
    for runtime in built:
        runtime.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def claim_all(scheduler: Scheduler, timeout: float = 600) -> None:
    """Claim every due timer, as a running scheduler does: while its executors are behind
    (claims are bounded by what they finish within a lease), it waits for them."""
    deadline = time.monotonic() + timeout
    while scheduler.run_once() or scheduler.held:
        assert time.monotonic() < deadline, "the executors did not keep up"
        if scheduler.held:
            time.sleep(0.02)


def metric(name: str, **labels: str) -> float:
    """A sample of this process' Prometheus registry (0 before its first count)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """A test that configures logging (a command run in-process, a log test) leaves the
    tests after it structlog's defaults: every level, to the console."""
    yield
    structlog.reset_defaults()


def settle(runtime: Runtime) -> None:
    """Write hot activity to the database, as the scheduler's flush does every second."""
    while runtime.activity.flush(runtime.clock.now()):
        pass


def _on_cluster(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    uses = getattr(item, "fixturenames", ())
    return "cluster_client" in uses or any(
        isinstance(value, str) and value.endswith("cluster") for value in params.values()
    )


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`integration` and `e2e` by folder; `slow` is set by the tests themselves. The tests
    on the one local Redis Cluster (which they empty) run in one process under `-n`."""
    for item in items:
        folder = item.path.parent.name
        if folder in ("integration", "e2e"):
            item.add_marker(folder)
        if _on_cluster(item):
            item.add_marker(pytest.mark.xdist_group("redis_cluster"))


pytest_plugins = ["tests.channel_harness"]
