"""Configuration the timer handlers read again and again, from memory: policy levels, flow
node types, live campaigns, campaign versions, channels.

Each organization's entries are held under the stamp of its configuration (`ConfigStamps`,
bumped after every commit that changes a bot, a policy, a flow or a campaign). A batch of
timers reads the stamps of its organizations once (`ConfigCache.batch`); an organization
whose stamp moved is forgotten, and what the batch then loads is held under the stamp it
read. The stamp is read before the rows: under READ COMMITTED (PostgreSQL) each statement
sees every commit before it began, so rows read after the stamp are at least as new as it
says (SQLite's one writer at a time gives the same). So a change through reengage applies
from the next batch in every process; one made behind its back (SQL by hand) within
`max_age`. Without Redis (no stamps) nothing is held beyond the batch, except campaign
versions, which never change once published.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import redis
import structlog

from reengage.adapters.redis.config_stamps import ConfigStamps
from reengage.domain import recovery as rec
from reengage.ports import ConfigStamp

T = TypeVar("T")
log = structlog.get_logger(__name__)

# Campaign versions held (each a parsed campaign, a few kilobytes).
VERSIONS_HELD = 512


@dataclass(slots=True)
class _OrgEntries:
    stamp: ConfigStamp
    loaded: float
    values: dict[Hashable, Any] = field(default_factory=dict)


class ConfigCache:
    def __init__(
        self,
        stamps: ConfigStamps | None,
        *,
        max_age: timedelta = timedelta(seconds=60),
        tick: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stamps = stamps
        self._max_age = max_age.total_seconds()
        self._tick = tick
        self._orgs: dict[int, _OrgEntries] = {}
        self._versions: OrderedDict[tuple[int, int], rec.Campaign] = OrderedDict()
        self._lock = threading.Lock()

    def batch(self, org_ids: Iterable[int]) -> ConfigBatch:
        """What one batch of timers reads through: the organizations' stamps read now (one
        Redis round trip), their entries kept only if the stamp has not moved."""
        wanted = sorted(set(org_ids))
        if self._stamps is None or not wanted:
            return ConfigBatch(self, {})
        try:
            stamps = self._stamps.read_many(wanted)
        except redis.RedisError:
            # Nothing can be trusted from memory: this batch reads its configuration anew.
            log.warning("config.stamps_unread", orgs=wanted, exc_info=True)
            return ConfigBatch(self, {})
        now = self._tick()
        with self._lock:
            for org_id, stamp in stamps.items():
                held = self._orgs.get(org_id)
                if held is None or held.stamp != stamp or now - held.loaded >= self._max_age:
                    self._orgs[org_id] = _OrgEntries(stamp, now)
        return ConfigBatch(self, stamps)

    def version(
        self, campaign_id: int, version: int, load: Callable[[], rec.Campaign]
    ) -> rec.Campaign:
        """A published version of a campaign (`load` reads it): read once per process, as
        versions never change."""
        key = (campaign_id, version)
        with self._lock:
            found = self._versions.get(key)
            if found is not None:
                self._versions.move_to_end(key)
                return found
        parsed = load()
        with self._lock:
            self._versions[key] = parsed
            while len(self._versions) > VERSIONS_HELD:
                self._versions.popitem(last=False)
        return parsed

    def forget(self, org_id: int) -> None:
        with self._lock:
            self._orgs.pop(org_id, None)

    def _held(self, org_id: int, stamp: ConfigStamp) -> _OrgEntries | None:
        held = self._orgs.get(org_id)
        return held if held is not None and held.stamp == stamp else None


@dataclass(slots=True)
class ConfigBatch:
    """The configuration one batch reads: from memory under the stamps read at its start,
    else loaded (and held, for an organization whose stamp it read)."""

    cache: ConfigCache | None = None  # None: nothing held beyond this batch
    stamps: dict[int, ConfigStamp] = field(default_factory=dict)
    # This batch's own reads (also what it reads of an organization it holds nothing for).
    seen: dict[tuple[int, Hashable], Any] = field(default_factory=dict)

    def get(self, org_id: int, key: Hashable, load: Callable[[], T]) -> T:
        """The value of `key` in the organization's configuration; `load` reads it (in the
        batch's transaction) when memory does not hold it."""
        if (org_id, key) in self.seen:
            return self.seen[org_id, key]  # type: ignore[no-any-return]
        stamp = self.stamps.get(org_id)
        held = None
        if stamp is not None and self.cache is not None:
            held = self.cache._held(org_id, stamp)
        if held is not None and key in held.values:
            value: T = held.values[key]
        else:
            value = load()
            if held is not None:
                held.values[key] = value
        self.seen[org_id, key] = value
        return value
