"""Events out: the decisions reengage tells the platforms around it about, which
subscriptions want which, and when a delivery that failed is tried again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# The payload's version: bumped when a field changes meaning or goes away (new fields don't).
PAYLOAD_VERSION = 1
# A failed delivery is tried again, first after `FIRST_RETRY`, each wait twice the one before
# and at most `MAX_RETRY_WAIT`, until `RETRY_PERIOD` after the event; then it is failed.
FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY_WAIT = timedelta(hours=1)
RETRY_PERIOD = timedelta(hours=24)
# A subscription whose every attempt failed for this long (no success in between) is disabled.
DISABLE_AFTER = timedelta(hours=24)
# A rotated secret keeps signing (a second signature) this long after the rotation.
ROTATION_OVERLAP = timedelta(hours=24)
MAX_PATTERNS = 50


class EventType(StrEnum):
    """Every event reengage sends out."""

    REMINDER_SENT = "conversation.reminder_sent"
    CLOSED = "conversation.closed"
    HANDED_OFF = "conversation.handed_off"
    FALLBACK_STARTED = "conversation.fallback_started"
    AGENT_CLOSED = "conversation.agent_closed"
    EPISODE_STARTED = "episode.started"
    EPISODE_STEP_SENT = "episode.step_sent"
    EPISODE_ENDED = "episode.ended"
    DELIVERY_FAILED = "delivery.failed"
    DELIVERY_AMBIGUOUS = "delivery.ambiguous"
    CONTACT_BLOCKED = "contact.blocked"
    CONTACT_OPTED_OUT = "contact.opted_out"
    CONTACT_OPTED_IN = "contact.opted_in"


def check_patterns(patterns: list[str]) -> str | None:
    """Why these event type patterns are refused (None: they are fine). A pattern is a type,
    `<group>.*` or `*`."""
    if not patterns:
        return "at least one event type is needed"
    if len(patterns) > MAX_PATTERNS:
        return f"at most {MAX_PATTERNS} event types"
    groups = {t.value.split(".")[0] for t in EventType}
    for pattern in patterns:
        if pattern == "*" or pattern in EventType.__members__.values():
            continue
        if pattern.endswith(".*") and pattern[:-2] in groups:
            continue
        return f"unknown event type {pattern!r}"
    return None


def matches(patterns: list[str], event_type: str) -> bool:
    """Whether a subscription with these patterns wants this event type."""
    group = event_type.split(".")[0]
    return any(p in ("*", event_type, f"{group}.*") for p in patterns)


@dataclass(frozen=True, slots=True)
class RetryAt:
    at: datetime


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str = "retry_period_over"


def next_retry(attempts: int, created_at: datetime, now: datetime) -> RetryAt | GiveUp:
    """After `attempts` failed attempts (the last one at `now`) of an event made at
    `created_at`: when to try again, or give up. The last try falls on the period's end."""
    end = created_at + RETRY_PERIOD
    if now >= end:
        return GiveUp()
    wait = min(FIRST_RETRY * 2 ** max(0, attempts - 1), MAX_RETRY_WAIT)
    return RetryAt(min(now + wait, end))


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    """Whether a subscription failing since `failing_since` (None: it is not) is disabled."""
    return failing_since is not None and now - failing_since >= DISABLE_AFTER


def envelope(
    event_id: int, event_type: str, created_at: datetime, data: dict[str, object]
) -> dict[str, object]:
    """The body of an event: the Standard Webhooks shape, `type`, `timestamp`, `data`, with
    the payload's version and the event's id (also its `webhook-id`)."""
    return {
        "id": webhook_id(event_id),
        "type": event_type,
        "version": PAYLOAD_VERSION,
        "timestamp": created_at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def webhook_id(event_id: int) -> str:
    """The `webhook-id` of an event: the same on every attempt and every re-send."""
    return f"evt_{event_id}"
