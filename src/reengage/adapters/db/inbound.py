"""The inbound-message outbox: what users' messages say, committed with their activity (or
before the platform gets its answer) and processed once by the `inbound` timer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from reengage.adapters.db.models import InboundMessage
from reengage.adapters.db.sets import insert_many
from reengage.domain.activity import ActivityEvent, EventType, subject_key
from reengage.domain.timer import Purpose, Timer, timer_key


def inbound_timer(bot_id: int, user_id: str, due_at: datetime) -> Timer:
    """The one timer that processes a subject's pending inbound messages, in order."""
    key = timer_key(Purpose.INBOUND, subject_key(bot_id, user_id))
    return Timer(key, Purpose.INBOUND, due_at, 0, {"bot_id": bot_id, "user_id": user_id})


def insert_inbound(
    session: Session, org_id: int, events: Sequence[ActivityEvent], now: datetime
) -> list[Timer]:
    """Store the inbound part of user messages (once per event id); return the timers that
    process them, to publish after the commit."""
    insert_rows(session, [inbound_rows(org_id, events, now)])
    return inbound_timers(events, now)


def inbound_rows(
    org_id: int, events: Sequence[ActivityEvent], now: datetime
) -> list[dict[str, Any]]:
    """The `inbound_message` rows of user messages that say something."""
    return [
        {
            "org_id": org_id,
            "bot_id": e.bot_id,
            "user_id": e.user_id,
            "event_id": e.event_id,
            "text": e.inbound.text,
            "name": e.inbound.name,
            "time_zone": e.inbound.time_zone,
            "language": e.inbound.language,
            "occurred_at": e.occurred_at,
            "received_at": now,
        }
        for e in events
        if e.inbound is not None and e.type is EventType.USER_MESSAGE
    ]


_TABLE: Any = InboundMessage.__table__
# What every new row starts with.
_FIXED = {"status": "pending", "effects": []}


def insert_rows(session: Session, groups: Sequence[list[dict[str, Any]]]) -> None:
    """Insert groups of rows (each from `inbound_rows`) together, once per event id."""
    rows = [{**row, **_FIXED} for group in groups for row in group]
    if rows:
        insert_many(session, _TABLE, rows)


def inbound_timers(events: Sequence[ActivityEvent], now: datetime) -> list[Timer]:
    subjects = dict.fromkeys((e.bot_id, e.user_id) for e in events if e.inbound is not None)
    return [inbound_timer(bot_id, user_id, now) for bot_id, user_id in subjects]


def rows_timers(groups: Sequence[list[dict[str, Any]]]) -> list[Timer]:
    """The timers that process stored rows (from `inbound_rows`), one per subject."""
    subjects = {(r["bot_id"], r["user_id"]): r["received_at"] for g in groups for r in g}
    return [inbound_timer(bot_id, user_id, at) for (bot_id, user_id), at in subjects.items()]
