"""What an inactivity timer does when it fires, and how its timers are rebuilt."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Bot, Conversation
from reengage.domain import inactivity
from reengage.domain.timer import Purpose, Timer
from reengage.services.conversation_rows import clock_of, inactivity_threshold
from reengage.services.event_log import append_event

log = structlog.get_logger(__name__)


def handle_inactivity(
    session: Session, timer: Timer, now: datetime, default_threshold: timedelta
) -> list[Timer]:
    """Record that a conversation went quiet, once, if no activity came in meanwhile."""
    conversation_id = int(timer.payload["conversation_id"] or 0)
    seq = int(timer.payload["seq"] or 0)
    conv = session.scalar(
        select(Conversation).where(Conversation.id == conversation_id).with_for_update()
    )
    if conv is None:
        log.info("inactivity.skipped", conversation_id=conversation_id, reason="not_found")
        return []
    bot = session.get(Bot, conv.bot_id)
    threshold = inactivity_threshold(bot, default_threshold)
    decision = inactivity.decide_inactivity(clock_of(conv), seq, threshold, now)
    if isinstance(decision, inactivity.Skip):
        log.info("inactivity.skipped", conversation_id=conv.id, reason=decision.reason)
        if decision.reason == "not_due":
            # The threshold grew since the timer was set: wait for the new deadline.
            return [
                t
                for t in [inactivity.next_inactivity_timer(conv.id, clock_of(conv), threshold)]
                if t
            ]
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
        select(Conversation.id, Conversation.inactivity_due_at, Conversation.activity_seq)
        .where(Conversation.inactivity_due_at.is_not(None), Conversation.id > after_id)
        .order_by(Conversation.id)
        .limit(limit)
    )
    if due_before is not None:
        stmt = stmt.where(Conversation.inactivity_due_at <= due_before)
    return [
        (
            cid,
            Timer(
                key=inactivity.inactivity_key(cid),
                purpose=Purpose.INACTIVITY,
                due_at=due,
                version=seq,
                payload={"conversation_id": cid, "seq": seq},
            ),
        )
        for cid, due, seq in session.execute(stmt)
    ]
