"""Logical shards of the hot state, so that it runs on Redis Cluster as on one Redis.

A fixed number of shards, each one hash tag: every key of a shard carries it, so each Lua
script touches one slot. A subject always belongs to one shard (CRC-32 of its key, stable
across processes and versions); a timer belongs to the shard of its key without the purpose
(`inactivity:<subject>` sits with its subject, whose script moves it).

One shard on one Redis keeps the key names of a single instance (`{reengage:timers}:…`,
`{reengage:activity}:…`), so upgrading costs nothing; any other layout names its keys
`{<namespace>:s<i>}:…`. Shard i's tag is chosen to fall in the i-th part of the slot space,
so that with the usual even allocation of slots the shards spread evenly over the masters.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import cast

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.commands.core import Script
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

# A synchronous client of either kind: both answer the commands and scripts the stores send.
SyncClient = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


@dataclass(frozen=True, slots=True)
class Layout:
    """How many logical shards, and whether the keys keep the single-instance names."""

    namespace: str = "reengage"
    count: int = 1
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("the number of Redis shards must be at least 1")

    @property
    def legacy(self) -> bool:
        """One shard on one Redis: today's key names, no hash tag per shard."""
        return self.count == 1 and not self.cluster

    def tag(self, index: int) -> str | None:
        """The hash tag of shard `index` (None: the single-instance names)."""
        return None if self.legacy else shard_tag(self.namespace, index, self.count)

    def tags(self) -> list[str | None]:
        return [self.tag(i) for i in range(self.count)]

    def of_subject(self, subject: str) -> int:
        return shard_of(subject, self.count)

    def of_timer(self, key: str) -> int:
        return timer_shard(key, self.count)


def shard_of(subject: str, count: int) -> int:
    """The shard of a subject key: CRC-32, never Python's salted `hash`."""
    return zlib.crc32(subject.encode()) % count if count > 1 else 0


def timer_shard(key: str, count: int) -> int:
    """The shard of a timer key: that of its key after the purpose (`purpose:rest`)."""
    _, _, rest = key.partition(":")
    return shard_of(rest or key, count)


def shard_tag(namespace: str, index: int, count: int) -> str:
    """`<namespace>:s<index>`, with a suffix where needed so that its slot falls in the
    index-th of `count` equal parts of the slot space."""
    low = index * REDIS_CLUSTER_HASH_SLOTS // count
    high = (index + 1) * REDIS_CLUSTER_HASH_SLOTS // count
    tag = f"{namespace}:s{index}"
    suffix = 0
    while not low <= key_slot(f"{{{tag}}}".encode()) < high:
        suffix += 1
        tag = f"{namespace}:s{index}.{suffix}"
    return tag


def script(client: SyncClient, source: str) -> Script:
    """A Lua script on either kind of client (a cluster sends it to its keys' node)."""
    return Script(cast(redis.Redis, client), source)


def connect(url: str, *, cluster: bool) -> SyncClient:
    """A client of one Redis, or of a cluster reached through any of its nodes."""
    if cluster:
        return cast(
            redis.cluster.RedisCluster,
            redis.cluster.RedisCluster.from_url(url, decode_responses=True),  # type: ignore[no-untyped-call]
        )
    return redis.Redis.from_url(url, decode_responses=True)


def connect_async(url: str, *, cluster: bool) -> AsyncClient:
    if cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(url, decode_responses=True)
    return cast(redis.asyncio.Redis, redis.asyncio.Redis.from_url(url, decode_responses=True))
