"""The delivery record's rules: when a send is surely lost, when it is ambiguous, when to try
again.

A delivery is claimed (`sending`) before the platform is called, and the attempt that holds
the claim marks it `requested_at` right before its request leaves. So a delivery found
`sending` by a later run was:
- never requested (no mark): the process died before the call. Surely not sent: it is taken
  again, never lost;
- requested less than `IN_FLIGHT` ago: its request may still be running in a live worker;
- requested longer ago: it left and no answer was recorded. *Ambiguous*: skipped (at most
  once, the default), or sent once more when its feature asked for at least once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# A request is over (answered or timed out: the clients time out at 20 s) this long after
# it left.
IN_FLIGHT = timedelta(seconds=25)
FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Reclaim:
    """Surely not sent (or sent again on purpose, `ambiguous`): take it for a new attempt."""

    ambiguous: bool = False


@dataclass(frozen=True, slots=True)
class InFlight:
    """Its request may still be running: look again at `until`."""

    until: datetime


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """It left and no answer came: record it as such, and never send it again."""


InterruptedDecision = Reclaim | InFlight | Ambiguous


def decide_interrupted(
    requested_at: datetime | None,
    retry_ambiguous: bool,
    ambiguous_at: datetime | None,
    now: datetime,
) -> InterruptedDecision:
    """What a run does with a delivery an earlier attempt left `sending`."""
    if requested_at is None:
        return Reclaim()
    if now < requested_at + IN_FLIGHT:
        return InFlight(requested_at + IN_FLIGHT)
    return ambiguous_outcome(retry_ambiguous, ambiguous_at)


def ambiguous_outcome(retry_ambiguous: bool, ambiguous_at: datetime | None) -> Reclaim | Ambiguous:
    """An outcome unknown: at most once (skip), or once more for at-least-once features."""
    if retry_ambiguous and ambiguous_at is None:
        return Reclaim(ambiguous=True)
    return Ambiguous()


def backoff(attempts: int) -> timedelta:
    """The wait before attempt `attempts + 1` of a send that surely did not get through:
    5 s, 10 s, 20 s, ... at most 10 minutes."""
    wait: timedelta = FIRST_RETRY * 2 ** min(max(0, attempts - 1), 20)
    return min(wait, MAX_RETRY)


def still_valid(valid_until: datetime | None, at: datetime) -> bool:
    """Whether a send may still go out at `at` (after the step's send window closed, or a
    reminder an hour late, it may not)."""
    return valid_until is None or at <= valid_until


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A platform's word on a message it took: sent, delivered, read, or failed."""

    channel_message_id: str
    status: str
    error_code: int | None = None
    error_title: str | None = None
