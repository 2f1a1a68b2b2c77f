"""Where the subject timers are rebuilt from: each conversation's `inactivity_due_at`."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Contact, Conversation
from reengage.domain import inactivity
from reengage.domain.timer import Timer

log = structlog.get_logger(__name__)


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
