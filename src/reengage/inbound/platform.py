"""Inbound platform traffic: updates become activity; delivery statuses move forward only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select, tuple_, update
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


@dataclass(frozen=True, slots=True)
class Statuses:
    """One notification's delivery statuses."""

    bot_id: int
    updates: Sequence[StatusUpdate]
    now: datetime


def apply_statuses(
    sessions: sessionmaker[Session], bot_id: int, updates: Sequence[StatusUpdate], now: datetime
) -> int:
    """Apply platform statuses to deliveries, never moving one backwards; return how many moved."""
    with sessions.begin() as session:
        return _apply(session, [Statuses(bot_id, updates, now)])


def write_statuses(session: Session, notifications: Sequence[Statuses]) -> None:
    """Several notifications' statuses in one transaction (a group commit's write)."""
    _apply(session, notifications)


_FIELDS = ("status", "reason", "platform_status", "error", "finished_at")


def _apply(session: Session, notifications: Sequence[Statuses]) -> int:
    """One read of the deliveries concerned (locked, in id order) and one write of those that
    moved: the statuses of any number of notifications in two statements."""
    wanted = {(n.bot_id, u.channel_message_id) for n in notifications for u in n.updates}
    if not wanted:
        return 0
    found = session.execute(
        select(Delivery.id, Delivery.bot_id, Delivery.channel_message_id, *_COLUMNS)
        .where(tuple_(Delivery.bot_id, Delivery.channel_message_id).in_(sorted(wanted)))
        .order_by(Delivery.id)
        .with_for_update()
    ).all()
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for r in found:
        rows.setdefault((r.bot_id, r.channel_message_id), r._asdict())
    moved: dict[int, dict[str, Any]] = {}
    for notification in notifications:
        for said in notification.updates:
            row = rows.get((notification.bot_id, said.channel_message_id))
            if row is not None and _advance(row, said, notification.now):
                moved[row["id"]] = {"id": row["id"], **{f: row[f] for f in _FIELDS}}
    if moved:
        session.execute(update(Delivery), list(moved.values()))
    return len(moved)


_COLUMNS = [getattr(Delivery, f) for f in _FIELDS]


def _advance(row: dict[str, Any], said: StatusUpdate, now: datetime) -> bool:
    """Move a delivery's row (as a dict) by one status, forward only; whether it moved."""
    if said.status not in STATUS_RANK:
        return False
    if STATUS_RANK[said.status] <= STATUS_RANK.get(row["platform_status"] or "", 0):
        return False
    row["platform_status"] = said.status
    if said.status == "failed":
        row["status"] = "failed"
        row["reason"] = "window_closed" if said.error_code == 131047 else "platform_failed"
        row["error"] = f"{said.error_code}: {said.error_title}"[:500]
        row["finished_at"] = now
    elif row["status"] == "failed" and row["reason"] in ("platform_failed", "window_closed"):
        row["status"], row["reason"] = "sent", None  # another device did get it
    return True
