"""The silence passed the bot's inactivity threshold: recorded once in the conversation's
log; and where the subject timers are rebuilt from (each conversation's deadline)."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Bot, Contact, Conversation
from reengage.domain import inactivity
from reengage.domain.timer import Timer
from reengage.services.conversation_rows import clock_of, inactivity_threshold
from reengage.services.event_log import append_event

log = structlog.get_logger(__name__)


def detect_inactivity(
    session: Session, conv: Conversation, bot: Bot, now: datetime, default: timedelta
) -> datetime | None:
    """Record `inactivity_detected` once per silence; when to look again if not yet due."""
    threshold = inactivity_threshold(bot, default)
    decision = inactivity.decide_inactivity(clock_of(conv), conv.activity_seq, threshold, now)
    if isinstance(decision, inactivity.Skip):
        if decision.reason == "not_due" and threshold and conv.last_activity_at:
            return conv.last_activity_at + threshold
        return None
    if append_event(
        session,
        conv,
        kind="inactivity_detected",
        dedup_key=f"inactivity:{decision.seq}",
        now=now,
        detail={"since": decision.since.isoformat(), "seq": decision.seq},
    ):
        log.info("inactivity.detected", conversation_id=conv.id)
    return None


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
        .where(Conversation.inactivity_due_at.is_not(None), Conversation.id > after_id)
        .order_by(Conversation.id)
        .limit(limit)
    )
    if due_before is not None:
        stmt = stmt.where(Conversation.inactivity_due_at <= due_before)
    return [
        (cid, inactivity.inactivity_timer(bot_id, user_id, seq, due))
        for cid, bot_id, user_id, due, seq in session.execute(stmt)
    ]
