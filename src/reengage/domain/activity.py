"""Activity events and how they move a conversation's clocks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class EventType(StrEnum):
    """The kinds of activity reengage tracks."""

    USER_MESSAGE = "message.user"
    BOT_MESSAGE = "message.bot"
    AGENT_MESSAGE = "message.agent"
    PAYMENT_CONFIRMED = "payment.confirmed"
    CONVERSATION_STATUS = "conversation.status"


class ConversationStatus(StrEnum):
    """Who holds the conversation: the bot, a human agent, or nobody."""

    BOT = "bot"
    HANDOFF = "handoff"
    CLOSED = "closed"


class ChannelKind(StrEnum):
    """The platforms a bot can live on."""

    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"
    WEBHOOK = "webhook"
    SIMULATOR = "simulator"


# WhatsApp's customer-service window: each user message opens or refreshes it.
WHATSAPP_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Inbound:
    """What a user's message says beyond being activity: its text (for flows and keywords)
    and what it tells about the contact."""

    text: str | None = None
    name: str | None = None
    time_zone: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """One validated activity event for one bot user."""

    event_id: str
    type: EventType
    bot_id: int
    user_id: str
    occurred_at: datetime
    status: ConversationStatus | None = None
    inbound: Inbound | None = None


@dataclass(frozen=True, slots=True)
class BotPolicy:
    """What recording activity needs to know about a bot."""

    bot_id: int
    org_id: int
    channel: ChannelKind
    inactivity_threshold: timedelta | None
    # After a close, the subject's timer wakes this long after it (a live recovery campaign's
    # threshold, counted from the close); None: a closed conversation has no timer.
    after_close: timedelta | None = None


@dataclass(frozen=True, slots=True)
class RecordResult:
    accepted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class ConversationClock:
    """The timestamps and counters activity moves; `activity_seq` versions them."""

    status: ConversationStatus = ConversationStatus.BOT
    activity_seq: int = 0
    last_activity_at: datetime | None = None
    last_message_at: datetime | None = None
    last_inbound_message_at: datetime | None = None
    last_message_from_contact_at: datetime | None = None
    last_message_from_agent_at: datetime | None = None
    window_expires_at: datetime | None = None
    paid_at: datetime | None = None
    closed_at: datetime | None = None


def _later(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


MESSAGE_TYPES = frozenset({EventType.USER_MESSAGE, EventType.BOT_MESSAGE, EventType.AGENT_MESSAGE})


def starts_silence(clock: ConversationClock, event: ActivityEvent) -> bool:
    """Whether `event` is new activity: a new version of the subject, whose silence starts
    again. A message older than the last activity (a webhook delivered late, or retried
    after days) moves the clocks it concerns but not the silence, so timers set for the
    current silence stand and nothing runs twice."""
    last = clock.last_activity_at
    return not (event.type in MESSAGE_TYPES and last is not None and event.occurred_at < last)


def apply_event(
    clock: ConversationClock, event: ActivityEvent, channel: ChannelKind
) -> ConversationClock:
    """The conversation clock after `event`; timestamps never move backwards."""
    at = event.occurred_at
    moved = replace(
        clock,
        activity_seq=clock.activity_seq + (1 if starts_silence(clock, event) else 0),
        last_activity_at=_later(clock.last_activity_at, at),
    )
    if event.type is EventType.USER_MESSAGE:
        return _apply_user_message(moved, at, channel)
    if event.type in (EventType.BOT_MESSAGE, EventType.AGENT_MESSAGE):
        moved = replace(moved, last_message_at=_later(moved.last_message_at, at))
        if event.type is EventType.AGENT_MESSAGE:
            moved = replace(
                moved, last_message_from_agent_at=_later(moved.last_message_from_agent_at, at)
            )
        return moved
    if event.type is EventType.PAYMENT_CONFIRMED:
        return replace(moved, paid_at=_later(moved.paid_at, at))
    status = event.status or clock.status
    return replace(
        moved, status=status, closed_at=at if status is ConversationStatus.CLOSED else None
    )


def _apply_user_message(
    clock: ConversationClock, at: datetime, channel: ChannelKind
) -> ConversationClock:
    inbound = _later(clock.last_inbound_message_at, at)
    window = inbound + WHATSAPP_WINDOW if channel is ChannelKind.WHATSAPP else None
    return replace(
        clock,
        last_message_at=_later(clock.last_message_at, at),
        last_inbound_message_at=inbound,
        last_message_from_contact_at=_later(clock.last_message_from_contact_at, at),
        window_expires_at=window,
    )


def apply_events(
    clock: ConversationClock, events: list[ActivityEvent], channel: ChannelKind
) -> ConversationClock:
    """Apply a subject's events in the order they happened."""
    for event in sorted(events, key=lambda e: e.occurred_at):
        clock = apply_event(clock, event, channel)
    return clock


@dataclass(frozen=True, slots=True)
class SubjectClock:
    """A subject's latest clock as a hot store holds it, on its way to the database.

    `generation` counts conversations: it grows when activity follows a close.
    """

    org_id: int
    bot_id: int
    user_id: str
    generation: int
    clock: ConversationClock
    due_at: datetime | None


def clock_fields(event: ActivityEvent, channel: ChannelKind) -> dict[str, datetime]:
    """The timestamps `event` pushes forward (each to at least its value), as `apply_event` does.

    Stores that keep clocks as max-merged fields (Redis) apply these; `apply_event` is the
    reference, and a test holds the two equal.
    """
    at = event.occurred_at
    fields = {"last_activity_at": at}
    if event.type is EventType.USER_MESSAGE:
        fields |= {
            "last_message_at": at,
            "last_inbound_message_at": at,
            "last_message_from_contact_at": at,
        }
        if channel is ChannelKind.WHATSAPP:
            fields["window_expires_at"] = at + WHATSAPP_WINDOW
    elif event.type is EventType.BOT_MESSAGE:
        fields["last_message_at"] = at
    elif event.type is EventType.AGENT_MESSAGE:
        fields |= {"last_message_at": at, "last_message_from_agent_at": at}
    elif event.type is EventType.PAYMENT_CONFIRMED:
        fields["paid_at"] = at
    return fields


def subject_key(bot_id: int, user_id: str) -> str:
    """A bot user's identity across stores: `<bot id>:<user id on the channel>`."""
    return f"{bot_id}:{user_id}"
