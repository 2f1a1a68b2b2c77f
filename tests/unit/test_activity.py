from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reengage.domain.activity import (
    ActivityEvent,
    ChannelKind,
    ConversationClock,
    ConversationStatus,
    EventType,
    apply_event,
    apply_events,
    clock_fields,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ev(
    type: EventType, at: datetime = T0, status: ConversationStatus | None = None
) -> ActivityEvent:
    return ActivityEvent("e", type, 1, "u", at, status)


@pytest.mark.parametrize(
    ("type", "channel", "expected"),
    [
        (
            EventType.USER_MESSAGE,
            ChannelKind.TELEGRAM,
            {
                "last_message_at": T0,
                "last_inbound_message_at": T0,
                "last_message_from_contact_at": T0,
                "window_expires_at": None,
            },
        ),
        (
            EventType.USER_MESSAGE,
            ChannelKind.WHATSAPP,
            {"last_inbound_message_at": T0, "window_expires_at": T0 + timedelta(hours=24)},
        ),
        (
            EventType.BOT_MESSAGE,
            ChannelKind.WHATSAPP,
            {"last_message_at": T0, "last_inbound_message_at": None, "window_expires_at": None},
        ),
        (
            EventType.AGENT_MESSAGE,
            ChannelKind.TELEGRAM,
            {
                "last_message_at": T0,
                "last_message_from_agent_at": T0,
                "last_message_from_contact_at": None,
            },
        ),
        (
            EventType.PAYMENT_CONFIRMED,
            ChannelKind.TELEGRAM,
            {"paid_at": T0, "last_message_at": None},
        ),
    ],
)
def test_each_event_type_moves_its_timestamps(
    type: EventType, channel: ChannelKind, expected: dict[str, object]
) -> None:
    clock = apply_event(ConversationClock(), ev(type), channel)
    assert clock.activity_seq == 1
    assert clock.last_activity_at == T0
    for name, value in expected.items():
        assert getattr(clock, name) == value, name


def test_status_change_closes_and_reopens() -> None:
    closed = apply_event(
        ConversationClock(),
        ev(EventType.CONVERSATION_STATUS, status=ConversationStatus.CLOSED),
        ChannelKind.TELEGRAM,
    )
    assert (closed.status, closed.closed_at) == (ConversationStatus.CLOSED, T0)
    handoff = apply_event(
        closed,
        ev(EventType.CONVERSATION_STATUS, T0 + timedelta(1), ConversationStatus.HANDOFF),
        ChannelKind.TELEGRAM,
    )
    assert (handoff.status, handoff.closed_at) == (ConversationStatus.HANDOFF, None)


def test_late_event_never_moves_timestamps_backwards() -> None:
    later = T0 + timedelta(minutes=5)
    clock = apply_events(
        ConversationClock(),
        [ev(EventType.USER_MESSAGE, later), ev(EventType.USER_MESSAGE, T0)],
        ChannelKind.WHATSAPP,
    )
    assert clock.activity_seq == 2
    assert clock.last_activity_at == later
    assert clock.window_expires_at == later + timedelta(hours=24)
    older = apply_event(
        clock, ev(EventType.USER_MESSAGE, T0 - timedelta(hours=1)), ChannelKind.WHATSAPP
    )
    assert older.last_inbound_message_at == later
    # A late message does not start a new silence: timers set for this one stand.
    assert older.activity_seq == 2


@pytest.mark.parametrize("channel", list(ChannelKind))
def test_max_merged_fields_equal_apply_event(channel: ChannelKind) -> None:
    """Stores that max-merge `clock_fields` end with the clock `apply_event` computes."""
    events = [
        ev(EventType.USER_MESSAGE, T0 + timedelta(minutes=3)),
        ev(EventType.BOT_MESSAGE, T0 + timedelta(minutes=1)),
        ev(EventType.AGENT_MESSAGE, T0 + timedelta(minutes=2)),
        ev(EventType.PAYMENT_CONFIRMED, T0 + timedelta(minutes=4)),
        ev(EventType.USER_MESSAGE, T0),
    ]
    expected = apply_events(ConversationClock(), events, channel)
    merged: dict[str, datetime] = {}
    for event in events:
        for name, value in clock_fields(event, channel).items():
            merged[name] = max(merged.get(name, value), value)
    for name in (
        "last_activity_at",
        "last_message_at",
        "last_inbound_message_at",
        "last_message_from_contact_at",
        "last_message_from_agent_at",
        "window_expires_at",
        "paid_at",
    ):
        assert merged.get(name) == getattr(expected, name), name
