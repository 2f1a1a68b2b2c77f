"""What an inactivity timer does when it fires, and how its timers are rebuilt."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Bot, Contact, Conversation
from reengage.domain import inactivity
from reengage.domain.timer import Timer
from reengage.ports import ActivityStore
from reengage.services.conversation_rows import clock_of, inactivity_threshold
from reengage.services.event_log import append_event

log = structlog.get_logger(__name__)


def open_conversation(session: Session, bot_id: int, user_id: str) -> Conversation | None:
    """The subject's open conversation, locked for this transaction."""
    return session.scalar(
        select(Conversation)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(
            Contact.bot_id == bot_id,
            Contact.external_id == user_id,
            Conversation.status != "closed",
        )
        .with_for_update()
    )


def handle_inactivity(
    session: Session,
    timer: Timer,
    now: datetime,
    *,
    activity: ActivityStore,
    default_threshold: timedelta,
) -> list[Timer]:
    """Record that a conversation went quiet, once, if no activity came in meanwhile."""
    bot_id, user_id = int(timer.payload["bot_id"] or 0), str(timer.payload["user_id"])
    seq = int(timer.payload["seq"] or 0)
    hot = activity.hot_seq(bot_id, user_id)
    if hot is not None and hot != seq:
        log.info("inactivity.skipped", bot_id=bot_id, user_id=user_id, reason="version_mismatch")
        return []
    activity.flush_subject(bot_id, user_id, now)
    conv = open_conversation(session, bot_id, user_id)
    if conv is None:
        log.info(
            "inactivity.skipped", bot_id=bot_id, user_id=user_id, reason="no_open_conversation"
        )
        return []
    threshold = inactivity_threshold(session.get_one(Bot, bot_id), default_threshold)
    decision = inactivity.decide_inactivity(clock_of(conv), seq, threshold, now)
    if isinstance(decision, inactivity.Skip):
        log.info("inactivity.skipped", conversation_id=conv.id, reason=decision.reason)
        if decision.reason == "not_due":
            # The threshold grew since the timer was set: wait for the new deadline.
            later = inactivity.next_inactivity_timer(bot_id, user_id, clock_of(conv), threshold)
            return [later] if later else []
        return []
    append_event(
        session,
        conv,
        kind="inactivity_detected",
        dedup_key=f"inactivity:{decision.seq}",
        now=now,
        detail={"since": decision.since.isoformat(), "seq": decision.seq},
    )
    conv.inactivity_due_at = None
    log.info("inactivity.detected", conversation_id=conv.id, since=decision.since.isoformat())
    return []


def pending_inactivity_timers(
    session: Session, due_before: datetime | None, after_id: int, limit: int
) -> list[tuple[int, Timer]]:
    """Inactivity timers the database says are pending, in conversation id order."""
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
