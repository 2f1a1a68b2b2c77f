"""Factories: plain functions that create rows through the services."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from reengage.domain.activity import ActivityEvent, ChannelKind, EventType
from reengage.runtime import Runtime
from reengage.services.tenancy import NewOrganization, create_bot, create_organization


def make_org(runtime: Runtime, name: str = "Acme") -> NewOrganization:
    return create_organization(runtime.sessions, name, runtime.clock.now())


def make_bot(runtime: Runtime, org_id: int, **overrides: Any) -> int:
    values: dict[str, Any] = {
        "name": "bot",
        "channel": ChannelKind.TELEGRAM,
        "now": runtime.clock.now(),
        "inactivity_threshold": timedelta(minutes=10),
    }
    values.update(overrides)
    bot = create_bot(runtime.sessions, runtime.credentials, org_id, **values)
    return bot.id


_counter = iter(range(10**9))


def message(
    bot_id: int,
    user_id: str,
    at: datetime,
    type: EventType = EventType.USER_MESSAGE,
    event_id: str | None = None,
    **extra: Any,
) -> ActivityEvent:
    return ActivityEvent(event_id or f"evt-{next(_counter)}", type, bot_id, user_id, at, **extra)
