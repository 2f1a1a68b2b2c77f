"""A master of a private Redis Cluster (three masters, one replica each) dies: the other
shards' timers fire on time, the dead master's fire once its replica took over, none twice."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from reengage.adapters.redis.sharded_activity import redis_timers
from reengage.adapters.redis.shards import Layout, connect
from reengage.domain.timer import Timer
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
             "--cluster-node-timeout", "1000", "--logfile", str(node / "log")],
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


def test_a_dead_master_delays_only_its_own_shards_timers(cluster: list[int]) -> None:
    client = connect(f"redis://127.0.0.1:{cluster[0]}/0", cluster=True)
    assert isinstance(client, RedisCluster)
    store = redis_timers(client, Layout("failover", 3, cluster=True))
    assert isinstance(store, ShardedTimerStore)
    keys: dict[int, list[str]] = {0: [], 1: [], 2: []}
    i = 0
    while min(len(k) for k in keys.values()) < 10:
        key = f"inactivity:1:u{i}"
        keys[store.shard_of(key)].append(key)
        i += 1
    every = [k for group in keys.values() for k in group[:10]]
    store.schedule([Timer(k, "inactivity", T0, 1, {}) for k in every])
    # The three shards on three masters; the first one's master dies, after its replica has
    # every write.
    tags = Layout("failover", 3, cluster=True).tags()
    masters = [_master_of(client, f"{{{tag}}}:timers:due") for tag in tags]
    assert len(set(masters)) == 3
    dead = redis.Redis(port=masters[0])
    assert dead.execute_command("WAIT", 1, 2000) == 1
    assert key_slot(f"{{{tags[0]}}}".encode()) < 5461  # the first third of the slots
    dead.shutdown(nosave=True)

    died = time.monotonic()
    claimed: dict[str, float] = {}
    while len(claimed) < 30 and time.monotonic() - died < 30:
        for c in store.claim_due(T0, 100, LEASE):
            assert c.timer.key not in claimed  # never twice
            claimed[c.timer.key] = time.monotonic() - died
        time.sleep(0.05)
    others = [claimed[k] for k in keys[1][:10] + keys[2][:10]]
    assert len(others) == 20
    assert max(others) < 3.0  # the live shards' timers did not wait for the failover
    own = [claimed.get(k) for k in keys[0][:10]]
    assert None not in own  # the replica took over, with the shard's timers
    assert min(t for t in own if t is not None) > max(others)
