"""Policies, campaigns and channels from memory in the timer handlers: a change made in
another process (the API, the console, the CLI) applies from the next batch; while nothing
changes, a batch reads none of them from the database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import event, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Contact, Episode
from reengage.domain.activity import ChannelKind, EventType
from reengage.domain.inactivity import inactivity_key
from reengage.domain.policy import Level
from reengage.domain.timer import Purpose
from reengage.ports import ConfigStamp
from reengage.runtime import Runtime
from reengage.services import campaigns
from reengage.services.bot_lifecycle import disable_bot
from reengage.services.config_cache import ConfigCache
from reengage.services.policies import Scope, delete_policy, put_policy
from reengage.services.tenancy import rotate_token
from reengage.timers.handler import Outcome
from tests.conftest import HotRedis
from tests.factories import make_bot, make_org, message

CAMPAIGN: dict[str, Any] = {
    "threshold": "10m",
    "steps": [{"schedule": "1m", "blocks": [{"kind": "text", "text": "Volte!"}]}],
}
REMINDED: dict[str, Any] = {
    "enabled": True,
    "timeout": "30m",
    "action": "close",
    "applies_to": ["bot_wait"],
    "reminders": [{"after": "5m", "text": "Ainda aí?"}],
}


def reminded(after: str) -> dict[str, Any]:
    return {**REMINDED, "reminders": [{"after": after, "text": "Ainda aí?"}]}


class Shop:
    """A worker and an admin process on the same database and Redis, one bot."""

    def __init__(self, make_runtime: Callable[..., Runtime], url: str, redis: HotRedis) -> None:
        self.worker = make_runtime(url, **redis.settings)
        self.admin = make_runtime(url, **redis.settings)  # another process: the API, say
        self.clock: ManualClock = self.worker.clock  # type: ignore[assignment]
        self.org = make_org(self.admin).org_id
        self.bot = make_bot(self.admin, self.org, credentials={"token": "1:OLD"})
        self.statements: list[str] = []
        event.listen(
            self.worker.engine,
            "before_cursor_execute",
            lambda *a: self.statements.append(str(a[2])),
        )

    def change(self, apply: Callable[[Any, datetime], object]) -> None:
        with self.admin.sessions.begin() as session:
            apply(session, self.clock.now())

    def silence(self, user: str, *, bot_spoke_last: bool = False) -> Outcome:
        """The user writes (the bot answers, with `bot_spoke_last`) and goes quiet; the
        worker runs their silence timer 11 minutes later."""
        at = self.clock.now()
        events = [message(self.bot, user, at)]
        if bot_spoke_last:
            events.append(message(self.bot, user, at, EventType.BOT_MESSAGE))
        self.worker.record(self.org, events)
        timer = self.worker.timers.get(inactivity_key(self.bot, user))
        assert timer is not None
        self.statements.clear()
        handler = self.worker.registry[Purpose.INACTIVITY]
        [outcome] = handler.handle_batch([timer], at + timedelta(minutes=11))
        return outcome

    def episode_version(self, user: str) -> int | None:
        with self.worker.sessions() as s:
            return s.scalar(
                select(Episode.version)
                .join(Contact, Contact.id == Episode.contact_id)
                .where(Contact.bot_id == self.bot, Contact.external_id == user)
            )

    def read(self, table: str) -> bool:
        return any(f"FROM {table}" in s or f"JOIN {table}" in s for s in self.statements)


@pytest.fixture
def shop(make_runtime: Callable[..., Runtime], pg_db: str, hot_redis: HotRedis) -> Shop:
    return Shop(make_runtime, pg_db, hot_redis)


def test_a_campaign_changed_in_another_process_applies_to_the_next_batch(shop: Shop) -> None:
    org, bot = shop.org, shop.bot
    shop.change(lambda s, now: campaigns.put_draft(s, org, bot, CAMPAIGN, now))
    shop.change(lambda s, now: campaigns.publish(s, org, bot, now))
    shop.change(lambda s, now: campaigns.set_enabled(s, org, bot, True, now))
    shop.silence("u1")
    assert shop.episode_version("u1") == 1
    assert shop.read("recovery_campaign")
    shop.silence("u2")
    assert shop.episode_version("u2") == 1
    assert not shop.read("recovery_campaign")  # from memory
    assert not shop.read("inactivity_policy")

    shop.change(lambda s, now: campaigns.set_enabled(s, org, bot, False, now))
    shop.silence("u3")
    assert shop.episode_version("u3") is None

    edited = {**CAMPAIGN, "steps": [{"schedule": "2m", "blocks": [{"kind": "text", "text": "!"}]}]}
    shop.change(lambda s, now: campaigns.put_draft(s, org, bot, edited, now))
    shop.change(lambda s, now: campaigns.publish(s, org, bot, now))
    shop.change(lambda s, now: campaigns.set_enabled(s, org, bot, True, now))
    shop.silence("u4")
    assert shop.episode_version("u4") == 2

    shop.change(lambda s, now: campaigns.set_exclusions(s, org, bot, ["u5"], now))
    shop.silence("u5")
    assert shop.episode_version("u5") is None
    shop.silence("u6")
    assert shop.episode_version("u6") == 2


def test_a_policy_changed_in_another_process_applies_to_the_next_batch(shop: Shop) -> None:
    org, bot = shop.org, shop.bot

    def wake(user: str) -> timedelta | None:
        """When the user's silence is next looked at, counted from their message."""
        at = shop.clock.now()
        outcome = shop.silence(user, bot_spoke_last=True)
        shop.clock.advance(timedelta(hours=1))
        wakes = [t.due_at - at for t in outcome.timers if t.purpose == Purpose.INACTIVITY]
        return wakes[0] if wakes else None

    scope = Scope(Level.BOT, bot)
    shop.change(lambda s, now: put_policy(s, org, scope, REMINDED, now))
    assert wake("u1") == timedelta(minutes=30)  # reminded at 11 minutes; the close is next
    assert wake("u2") == timedelta(minutes=30)
    assert not shop.read("inactivity_policy")  # from memory

    shop.change(lambda s, now: put_policy(s, org, scope, reminded("20m"), now))
    assert wake("u3") == timedelta(minutes=20)

    shop.change(lambda s, now: put_policy(s, org, Scope(Level.ORGANIZATION), reminded("25m"), now))
    assert wake("u4") == timedelta(minutes=20)  # the bot's level still speaks
    shop.change(lambda s, now: delete_policy(s, org, scope))
    assert wake("u5") == timedelta(minutes=25)  # the organization's level now


def test_a_token_rotated_or_a_bot_disabled_in_another_process_applies_at_once(
    shop: Shop,
) -> None:
    org, bot = shop.org, shop.bot
    first = shop.worker.channel_for(org, bot)
    assert shop.worker.channel_for(org, bot) is first  # from memory
    rotate_token(shop.admin.sessions, shop.admin.credentials, org, bot, "2:NEW")
    rotated = shop.worker.channel_for(org, bot)
    assert rotated is not first
    assert rotated._token == "2:NEW"  # type: ignore[attr-defined]

    disable_bot(shop.admin.sessions, org, bot, shop.clock.now())
    assert shop.worker.channel_for(org, bot) is not rotated  # read again


def test_without_redis_nothing_is_held_beyond_a_batch(
    make_runtime: Callable[..., Runtime], db_url: str
) -> None:
    runtime = make_runtime(db_url)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org, channel=ChannelKind.SIMULATOR)
    loads: list[int] = []

    def load() -> int:
        loads.append(1)
        return 1

    for _ in range(2):
        batch = runtime.config.batch([org])
        assert batch.get(org, "key", load) == 1
        assert batch.get(org, "key", load) == 1  # once per batch
    assert len(loads) == 2
    assert runtime.channel_for(org, bot) is not runtime.channel_for(org, bot)


def test_a_stamp_unchanged_past_max_age_is_read_again() -> None:
    """A change made behind reengage's back (SQL by hand) is seen within `max_age`."""
    now = [0.0]

    class Stamps:
        def read_many(self, org_ids: list[int]) -> dict[int, ConfigStamp]:
            return {o: ConfigStamp(f"k{o}", "same") for o in org_ids}

    cache = ConfigCache(Stamps(), max_age=timedelta(seconds=60), tick=lambda: now[0])  # type: ignore[arg-type]
    loads: list[int] = []

    def load() -> int:
        loads.append(1)
        return 1

    cache.batch([1]).get(1, "key", load)
    now[0] = 59
    cache.batch([1]).get(1, "key", load)
    assert len(loads) == 1
    now[0] = 60
    cache.batch([1]).get(1, "key", load)
    assert len(loads) == 2


def test_a_batch_that_cannot_read_the_stamps_reads_its_configuration_anew() -> None:
    class Down:
        def read_many(self, org_ids: list[int]) -> dict[int, ConfigStamp]:
            raise redis.ConnectionError("Redis is away")

    cache = ConfigCache(Down())  # type: ignore[arg-type]
    loads: list[int] = []

    def load() -> int:
        loads.append(1)
        return 1

    cache.batch([1]).get(1, "key", load)
    cache.batch([1]).get(1, "key", load)
    assert len(loads) == 2
