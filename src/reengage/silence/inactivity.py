"""The silence passed the bot's inactivity threshold: recorded once in the conversation's
log; and where the subject timers are rebuilt from (each conversation's deadline)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Bot, Contact, Conversation
from reengage.domain import inactivity
from reengage.domain.timer import Timer
from reengage.services.conversation_rows import clock_of, inactivity_threshold
from reengage.services.event_log import NewEvent, append_events

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Detected:
    """What a silence's inactivity check found: when to look again (not yet due), or the
    event that records it (due: appended once per silence, with a batch's others)."""

    wake: datetime | None = None
    event: NewEvent | None = None


def detect_inactivity(conv: Conversation, bot: Bot, now: datetime, default: timedelta) -> Detected:
    """`inactivity_detected` once per silence; when to look again if not yet due."""
    threshold = inactivity_threshold(bot, default)
    decision = inactivity.decide_inactivity(clock_of(conv), conv.activity_seq, threshold, now)
    if isinstance(decision, inactivity.Skip):
        if decision.reason == "not_due" and threshold and conv.last_activity_at:
            return Detected(wake=conv.last_activity_at + threshold)
        return Detected()
    detail = {"since": decision.since.isoformat(), "seq": decision.seq}
    return Detected(
        event=NewEvent(conv, "inactivity_detected", f"inactivity:{decision.seq}", now, None, detail)
    )


def record_detections(session: Session, events: list[NewEvent]) -> None:
    """Append the batch's `inactivity_detected` events in one statement (each once)."""
    for conversation_id in append_events(session, events):
        log.debug("inactivity.detected", conversation_id=conversation_id)


def pending_inactivity_timers(
    session: Session, due_before: datetime | None, after_id: int, limit: int
) -> list[tuple[int, Timer]]:
    """Subject timers the database says are pending, in conversation id order."""
    stmt = (
        select(
            Conversation.id,
            Conversation.bot_id,
            Contact.external_id,
            Conversation.inactivity_due_at,
            Conversation.activity_seq,
        )
        .join(Contact, Contact.id == Conversation.contact_id)
        .join(Bot, Bot.id == Conversation.bot_id)
        .where(
            Conversation.inactivity_due_at.is_not(None),
            Conversation.id > after_id,
            Bot.disabled_at.is_(None),  # a disabled bot's come back when it is enabled
        )
        .order_by(Conversation.id)
        .limit(limit)
    )
    if due_before is not None:
        stmt = stmt.where(Conversation.inactivity_due_at <= due_before)
    return [
        (cid, inactivity.inactivity_timer(bot_id, user_id, seq, due))
        for cid, bot_id, user_id, due, seq in session.execute(stmt)
    ]
