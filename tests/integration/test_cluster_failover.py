"""A master of a private Redis Cluster (three masters, one replica each) dies under a running
scheduler: the other shards' timers fire on time, the dead master's once its replica took
over, none twice."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.clock import SystemClock
from reengage.adapters.redis.sharded_activity import redis_timers
from reengage.adapters.redis.shards import Layout, connect
from reengage.domain.timer import ClaimedTimer, Timer
from reengage.timers.scheduler import Scheduler
from reengage.timers.sharded_store import ShardedTimerStore
from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def _port() -> int:
    """A free port whose cluster bus port (+10000) exists."""
    while (port := free_port()) > 55000:
        pass
    return port


def _ok(port: int) -> bool:
    try:
        info = redis.Redis(port=port, decode_responses=True).cluster("info")
    except redis.RedisError:
        return False
    return "cluster_state:ok" in str(info)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[int]]:
    ports = [_port() for _ in range(6)]
    for port in ports:
        node = tmp_path / str(port)
        node.mkdir()
        subprocess.run(
            ["redis-server", "--cluster-enabled", "yes", "--cluster-config-file",
             str(node / "nodes.conf"), "--dir", str(node), "--port", str(port),
             "--bind", "127.0.0.1", "--daemonize", "yes", "--save", "", "--appendonly", "no",
             "--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "no",
             "--logfile", str(node / "log")],
            check=True,
        )  # fmt: skip
    for port in ports:
        for _ in range(40):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.25)
    subprocess.run(
        ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
         "--cluster-replicas", "1", "--cluster-yes"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not all(_ok(p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.25)
    try:
        yield ports
    finally:
        for port in ports:
            with contextlib.suppress(redis.RedisError):  # the one killed is gone already
                redis.Redis(port=port).shutdown(nosave=True)


def _master_of(client: RedisCluster, key: str) -> int:
    node = client.get_node_from_key(key)
    assert node is not None
    return int(node.port)


class Recorder:
    """An executor that notes when each timer ran (real seconds after its due) and acks it."""

    def __init__(self, store: ShardedTimerStore) -> None:
        self.store = store
        self.late: dict[str, float] = {}
        self.twice: list[str] = []

    def submit(self, claimed: Sequence[ClaimedTimer], now: datetime) -> None:
        for c in claimed:
            if c.timer.key in self.late:
                self.twice.append(c.timer.key)
            self.late[c.timer.key] = time.time() - c.timer.due_at.timestamp()
        self.store.ack(claimed)


def test_a_dead_master_delays_only_its_own_shards_timers(cluster: list[int]) -> None:
    client = connect(f"redis://127.0.0.1:{cluster[0]}/0", cluster=True)
    assert isinstance(client, RedisCluster)
    layout = Layout("failover", 3, cluster=True)
    store = redis_timers(client, layout)
    assert isinstance(store, ShardedTimerStore)
    keys: dict[int, list[str]] = {0: [], 1: [], 2: []}
    i = 0
    while min(len(k) for k in keys.values()) < 10:
        key = f"inactivity:1:u{i}"
        if len(keys[store.shard_of(key)]) < 10:
            keys[store.shard_of(key)].append(key)
        i += 1
    # Due from 1 s after the master's death, one every 50 ms, shards interleaved.
    due = time.time() + 2.0
    order = [k for trio in zip(*keys.values(), strict=True) for k in trio]
    store.schedule(
        [Timer(k, "inactivity", datetime.fromtimestamp(due + n * 0.05, UTC), 1, {})
         for n, k in enumerate(order)]
    )  # fmt: skip
    store.mark_rebuilt()
    # The three shards on three masters; the first one's master dies, after its replica has
    # every write.
    masters = [_master_of(client, f"{{{tag}}}:timers:due") for tag in layout.tags()]
    assert len(set(masters)) == 3
    recorder = Recorder(store)
    scheduler = Scheduler(
        sessions=sessionmaker[Session](),  # never used: nothing to rebuild, no handlers
        store=store,
        executor=recorder,
        registry={},
        clock=SystemClock(),
    )
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,))
    thread.start()
    try:
        dead = redis.Redis(port=masters[0])
        assert dead.execute_command("WAIT", 1, 2000) == 1
        time.sleep(max(0.0, due - 1.0 - time.time()))
        dead.shutdown(nosave=True)
        deadline = time.time() + 30
        while len(recorder.late) < 30 and time.time() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join()
    others = [recorder.late[k] for k in keys[1] + keys[2]]
    assert max(others) < 1.0  # the live shards' timers did not wait for the failover
    own = [recorder.late.get(k) for k in keys[0]]
    assert None not in own  # the replica took over, with the shard's timers
    assert recorder.twice == []
