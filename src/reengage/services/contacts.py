"""Contacts that blocked the bot: stop everything for them."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Contact, Conversation
from reengage.domain.inactivity import inactivity_key

log = structlog.get_logger(__name__)


def mark_blocked(session: Session, contact: Contact, now: datetime) -> list[str]:
    """Mark the contact unreachable and clear its deadlines; return the timer keys to cancel."""
    contact.blocked_at = contact.blocked_at or now
    conversations = session.scalars(
        select(Conversation)
        .where(Conversation.contact_id == contact.id, Conversation.status != "closed")
        .with_for_update()
    ).all()
    for conv in conversations:
        conv.inactivity_due_at = None
    keys = [inactivity_key(contact.bot_id, contact.external_id)]
    log.info("contact.blocked", contact_id=contact.id, bot_id=contact.bot_id)
    return keys


def mark_unblocked(contact: Contact) -> None:
    contact.blocked_at = None
    log.info("contact.unblocked", contact_id=contact.id, bot_id=contact.bot_id)
