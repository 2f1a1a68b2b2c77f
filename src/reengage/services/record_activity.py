"""Record activity events: move conversation clocks and their one pending timer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import redis.asyncio
import structlog
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Bot
from reengage.adapters.redis.activity_store import RedisActivityStore
from reengage.adapters.redis.sharded_activity import ShardedActivityStore
from reengage.domain.activity import ActivityEvent, BotPolicy, ChannelKind, RecordResult
from reengage.domain.bounds import event_problem
from reengage.domain.timer import Timer
from reengage.i18n import N_
from reengage.ports import ActivityStore, ConfigStamp, StaleConfig
from reengage.services.conversation_rows import inactivity_threshold
from reengage.services.errors import InvalidInput
from reengage.services.tenancy import scoped

log = structlog.get_logger(__name__)

# How use cases record activity without holding the runtime (`Runtime.record`).
Record = Callable[[int, Sequence[ActivityEvent]], RecordResult]


@dataclass(frozen=True, slots=True)
class RecordActivity:
    """An effect: the activity a committed decision produced (the bot spoke, the
    conversation was handed off), recorded by its event ids, so at most once."""

    record: Record
    org_id: int
    events: Sequence[ActivityEvent]

    def __call__(self) -> Sequence[Timer]:
        if self.events:
            self.record(self.org_id, self.events)
        return ()


def bot_policies(
    session: Session, org_id: int, bot_ids: set[int], default_threshold: timedelta
) -> dict[int, BotPolicy]:
    """The organization's bots among `bot_ids` (another organization's bots are not found)."""
    rows = session.scalars(scoped(Bot, org_id, Bot.id.in_(bot_ids), Bot.deleted_at.is_(None)))
    return {b.id: bot_policy(b, default_threshold) for b in rows}


def bot_policy(bot: Bot, default_threshold: timedelta) -> BotPolicy:
    """What moves the timers of a bot's subjects."""
    return BotPolicy(
        bot.id,
        bot.org_id,
        ChannelKind(bot.channel),
        wake_delay(bot, default_threshold),
        timedelta(seconds=bot.recovery_threshold_s) if bot.recovery_threshold_s else None,
    )


def wake_delay(bot: Bot, default_threshold: timedelta) -> timedelta | None:
    """After how much silence a subject's timer fires: the shortest silence any feature of the
    bot acts on (its inactivity threshold, its policies' first stages, the question default).
    Features re-check on firing and ask for a later wake-up when theirs is not due yet."""
    candidates = [inactivity_threshold(bot, default_threshold)]
    if bot.wake_after_s:
        candidates.append(timedelta(seconds=bot.wake_after_s))
    known = [c for c in candidates if c is not None]
    return min(known) if known else None


def check_events(events: Sequence[ActivityEvent]) -> None:
    """Refuse a batch the stores cannot hold, naming the field, before any query: a value
    past them would otherwise fail in a driver, or poison the write-behind flush."""
    for index, event in enumerate(events):
        problem = event_problem(event)
        if problem:
            raise InvalidInput(problem[1], f"events[{index}].{problem[0]}")


# How often in a row a batch meets a configuration that changed under it before giving up.
_ATTEMPTS = 5


def record_activity(
    tenants: TenantView,
    store: ActivityStore,
    org_id: int,
    events: Sequence[ActivityEvent],
    now: datetime,
    recheck: Callable[[], None] | None = None,
    key: str | None = None,
) -> RecordResult:
    """Validate, then apply the batch atomically: all events are recorded, or none. When the
    organization's configuration changed since it was cached, `recheck` (the caller's key or
    signature, read afresh) runs before the batch is tried again. The caller's API `key` is
    checked under the same configuration stamp as the bots the batch is applied with."""
    check_events(events)
    for _ in range(_ATTEMPTS - 1):
        try:
            return _record(tenants, store, org_id, events, now, key)
        except StaleConfig:
            tenants.forget(org_id)
            if recheck is not None:
                recheck()
    return _record(tenants, store, org_id, events, now, key)


def _record(
    tenants: TenantView,
    store: ActivityStore,
    org_id: int,
    events: Sequence[ActivityEvent],
    now: datetime,
    key: str | None = None,
) -> RecordResult:
    policies, stamp = tenants.bots(org_id, {e.bot_id for e in events}, key)
    for index, event in enumerate(events):
        if event.bot_id not in policies:
            raise InvalidInput(
                N_("unknown bot {bot_id}"), f"events[{index}].bot_id", bot_id=event.bot_id
            )
    result = store.record(org_id, policies, events, now, stamp)
    log.debug("activity.recorded", org_id=org_id, accepted=result.accepted)
    return result


async def record_on_loop(
    tenants: TenantView,
    store: RedisActivityStore | ShardedActivityStore,
    client: redis.asyncio.Redis,
    org_id: int,
    events: Sequence[ActivityEvent],
    now: datetime,
    key: str | None = None,
) -> RecordResult | None:
    """`record_activity` without leaving the event loop, for a batch whose bots are cached
    and that changes no conversation's status: None, with nothing applied, when it needs
    more."""
    check_events(events)
    policies, stamp = tenants.bots(org_id, {e.bot_id for e in events}, key)
    if len(policies) < len({e.bot_id for e in events}):
        return None  # `record_activity` names the unknown bot
    return await store.record_on_loop(client, org_id, policies, events, stamp, now)


class TenantView(Protocol):
    """Where recording finds the organization's bots (`tenant_cache.TenantCache`)."""

    def bots(
        self, org_id: int, bot_ids: set[int], key: str | None = None
    ) -> tuple[dict[int, BotPolicy], ConfigStamp | None]: ...

    def forget(self, org_id: int) -> None: ...
