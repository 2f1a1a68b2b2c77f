"""Mapping between conversation rows and the domain's conversation clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from reengage.adapters.db.models import Bot, Conversation
from reengage.domain.activity import ConversationClock, ConversationStatus

CLOCK_COLUMNS = (
    "activity_seq",
    "last_activity_at",
    "last_message_at",
    "last_inbound_message_at",
    "last_message_from_contact_at",
    "last_message_from_agent_at",
    "window_expires_at",
    "closed_at",
)


def clock_of(row: Any, paid_at: Any = None) -> ConversationClock:
    """The domain clock of a conversation row (ORM object or Core row)."""
    values = {name: getattr(row, name) for name in CLOCK_COLUMNS}
    return ConversationClock(status=ConversationStatus(row.status), paid_at=paid_at, **values)


def clock_values(clock: ConversationClock) -> dict[str, Any]:
    """The column values that store a clock."""
    values = {name: getattr(clock, name) for name in CLOCK_COLUMNS}
    values["status"] = clock.status.value
    return values


def inactivity_threshold(bot: Bot | Any, default: timedelta) -> timedelta | None:
    """A bot's inactivity threshold: its own, the default when unset, none when 0."""
    seconds = bot.inactivity_threshold_s
    if seconds is None:
        return default
    return timedelta(seconds=seconds) if seconds > 0 else None


def conversation_clock(conversation: Conversation) -> ConversationClock:
    return clock_of(conversation)
