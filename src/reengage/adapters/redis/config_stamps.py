"""One version stamp per organization's configuration (its bots, API keys, policies, flows,
campaigns), in Redis.

Every process that changes any of these bumps the organization's stamp after the commit. API
processes keep bots and keys in memory under the stamp they read, and the record script
refuses a batch whose stamp is no longer current; timer handlers keep policies, campaigns and
channels under it (`ConfigCache`) and read the stamps once per batch. So a change takes
effect at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import uuid4
from weakref import WeakKeyDictionary

import redis
import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import (
    ApiKey,
    Bot,
    Campaign,
    CampaignVersion,
    FlowRow,
    Organization,
    PolicyRow,
)
from reengage.adapters.redis.shards import SyncClient
from reengage.ports import ConfigStamp

log = structlog.get_logger(__name__)

# What API processes and timer handlers cache of an organization: a change to any of these
# bumps its stamp. Written through the ORM only (a bulk UPDATE or DELETE is not seen here).
WATCHED = (Bot, ApiKey, Organization, PolicyRow, FlowRow, Campaign, CampaignVersion)


class ConfigStamps:
    """`tags`: the hash tags of the activity shards (None: a single instance's names). Each
    shard holds a copy of every stamp, so that its record script reads it in its own slot."""

    def __init__(
        self, client: SyncClient, namespace: str = "reengage", tags: Sequence[str | None] = (None,)
    ) -> None:
        self._r = client
        self._prefixes = [
            f"{{{namespace}:activity}}:config:" if tag is None else f"{{{tag}}}:activity:config:"
            for tag in tags
        ]
        self._changed: WeakKeyDictionary[Session, set[int]] = WeakKeyDictionary()

    def read(self, org_id: int) -> ConfigStamp:
        key = f"{self._prefixes[0]}{org_id}"
        return ConfigStamp(key, str(self._r.get(key) or ""))

    def read_many(self, org_ids: Sequence[int]) -> dict[int, ConfigStamp]:
        """The stamps of many organizations (one round trip)."""
        keys = [f"{self._prefixes[0]}{org_id}" for org_id in org_ids]
        values: list[str | None] = list(self._r.mget(keys)) if keys else []  # type: ignore[arg-type]
        return {
            org_id: ConfigStamp(key, str(value or ""))
            for org_id, key, value in zip(org_ids, keys, values, strict=True)
        }

    def bump(self, org_ids: set[int]) -> None:
        stamps = {org_id: uuid4().hex for org_id in org_ids}
        # The copy that is read goes last: whoever reads the new stamp finds it everywhere.
        for prefix in [*self._prefixes[1:], self._prefixes[0]]:
            pipe = self._r.pipeline(transaction=False)
            for org_id, value in stamps.items():
                pipe.set(f"{prefix}{org_id}", value)
            pipe.execute()

    def watch(self, sessions: sessionmaker[Session]) -> None:
        """Bump the stamp of every organization whose bots or keys a session of `sessions`
        changed, once its transaction committed (before, a cache could reload the old rows
        under the new stamp)."""
        event.listen(sessions, "after_flush", self._seen)
        event.listen(sessions, "after_commit", self._committed)
        event.listen(sessions, "after_soft_rollback", self._rolled_back)

    def _seen(self, session: Session, _context: object) -> None:
        orgs = {
            obj.id if isinstance(obj, Organization) else obj.org_id
            for obj in (*session.new, *session.dirty, *session.deleted)
            if isinstance(obj, WATCHED)
        }
        if orgs:
            self._changed.setdefault(session, set()).update(orgs)

    def _committed(self, session: Session) -> None:
        orgs = self._changed.pop(session, None)
        if not orgs:
            return
        try:
            self.bump(orgs)
        except redis.RedisError:
            # The change is committed: failing the caller now would hide that. Caches see it
            # within their maximum age.
            log.warning("config.stamp_not_bumped", orgs=sorted(orgs), exc_info=True)

    def _rolled_back(self, session: Session, _previous: object) -> None:
        self._changed.pop(session, None)
