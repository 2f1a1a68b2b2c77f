"""Durable timers: what is due, when, and what for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

JSONScalar = str | int | float | bool | None
Payload = dict[str, JSONScalar]


class Purpose(StrEnum):
    """What a timer is for; each purpose has one handler and one rebuild source."""

    INACTIVITY = "inactivity"
    CONVERSATION_TIMEOUT = "conversation_timeout"
    RECOVERY_STEP = "recovery_step"
    AUTO_DELETE = "auto_delete"
    DELIVERY = "delivery"
    CHAT_ACTION = "chat_action"
    INBOUND = "inbound"
    EVENT = "event"  # one event out to one subscription
    MANAGER_NOTICE = "manager_notice"  # one manager bot message to one admin


@dataclass(frozen=True, slots=True)
class Timer:
    """One pending timer. `key` is unique: scheduling the same key replaces the timer.

    `version` orders writes for the same key: a store never lets an older version replace a
    newer one, so concurrent writers can publish in any order.
    """

    key: str
    purpose: str
    due_at: datetime
    version: int = 0
    payload: Payload = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClaimedTimer:
    """A timer handed to one executor under a lease; `token` proves which schedule it was."""

    timer: Timer
    token: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Backlog:
    """Timers claimable and not claimed at an instant: how many, and since when the oldest
    (its due time, or the end of the lease it ran out of)."""

    due: int
    oldest: datetime | None

    def oldest_age(self, now: datetime) -> float:
        """Seconds the oldest has waited for a claim (0: none waits)."""
        return max(0.0, (now - self.oldest).total_seconds()) if self.oldest else 0.0


def timer_key(purpose: str, subject: str) -> str:
    """The one key a subject's timer of a purpose lives under."""
    return f"{purpose}:{subject}"
