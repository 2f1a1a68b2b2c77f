"""Inbound platform traffic: updates become activity; delivery statuses move forward only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import Contact, Delivery
from reengage.domain.delivery import StatusUpdate
from reengage.ports import TimerStore
from reengage.services.contacts import mark_blocked, mark_unblocked

log = structlog.get_logger(__name__)

# A delivery's platform status only moves up this ladder. Evidence that a message reached a
# device (delivered, read) outranks a failure reported by another device.
STATUS_RANK = {"sent": 1, "failed": 2, "delivered": 3, "read": 4}


def set_blocked(
    sessions: sessionmaker[Session],
    timers: TimerStore,
    org_id: int,
    bot_id: int,
    user_id: str,
    blocked: bool,
    now: datetime,
) -> None:
    """The user blocked (or unblocked) the bot on the platform."""
    with sessions.begin() as session:
        contact = session.scalar(
            select(Contact).where(Contact.bot_id == bot_id, Contact.external_id == user_id)
        )
        if contact is None:
            if not blocked:
                return
            contact = Contact(org_id=org_id, bot_id=bot_id, external_id=user_id, created_at=now)
            session.add(contact)
            session.flush()
        keys = mark_blocked(session, contact, now) if blocked else []
        if not blocked:
            mark_unblocked(contact)
    timers.cancel(keys)


def apply_statuses(
    sessions: sessionmaker[Session], bot_id: int, updates: Sequence[StatusUpdate], now: datetime
) -> int:
    """Apply platform statuses to deliveries, never moving one backwards; return how many moved."""
    moved = 0
    with sessions.begin() as session:
        for update in updates:
            row = session.scalars(
                select(Delivery)
                .where(
                    Delivery.bot_id == bot_id,
                    Delivery.channel_message_id == update.channel_message_id,
                )
                .with_for_update()
            ).first()
            if row is None or update.status not in STATUS_RANK:
                continue
            if STATUS_RANK[update.status] <= STATUS_RANK.get(row.platform_status or "", 0):
                continue
            row.platform_status = update.status
            if update.status == "failed":
                row.status = "failed"
                row.reason = "window_closed" if update.error_code == 131047 else "platform_failed"
                row.error = f"{update.error_code}: {update.error_title}"[:500]
                row.finished_at = now
            elif row.status == "failed" and row.reason in ("platform_failed", "window_closed"):
                row.status, row.reason = "sent", None  # another device did get it
            moved += 1
    return moved
