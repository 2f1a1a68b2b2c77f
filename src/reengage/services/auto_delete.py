"""Auto-delete: a sent message whose block asked for it is deleted after its time, where the
platform still allows it (Telegram: 48 h); the outcome lands on the delivery row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import Contact, Delivery
from reengage.domain.outbound import Failed, Sent, Skipped
from reengage.domain.timer import Purpose, Timer, timer_key
from reengage.ports import ChannelProvider

log = structlog.get_logger(__name__)


def delete_timer(delivery_id: int, due_at: datetime) -> Timer:
    return Timer(
        timer_key(Purpose.AUTO_DELETE, str(delivery_id)),
        Purpose.AUTO_DELETE,
        due_at,
        0,
        {"delivery_id": delivery_id},
    )


def handle_auto_delete(
    session: Session,
    timer: Timer,
    now: datetime,
    *,
    sessions: sessionmaker[Session],
    channels: ChannelProvider,
) -> list[Timer]:
    """Delete a sent message whose block asked for it; the platform's rules decide whether it
    can still be done (Telegram: 48 h), and the outcome lands on the delivery row. No
    transaction is held while the platform is called."""
    delivery_id = int(timer.payload["delivery_id"] or 0)
    with sessions() as reading:
        row = reading.get(Delivery, delivery_id)
        if row is None or row.delete_status is not None or row.channel_message_id is None:
            return []
        contact = reading.get_one(Contact, row.contact_id)
        target = (
            row.org_id,
            row.bot_id,
            contact.external_id,
            row.channel_message_id,
            row.sent_at or row.finished_at or now,
        )
    org_id, bot_id, chat_id, message_id, sent_at = target
    outcome = channels.channel_for(org_id, bot_id).delete(chat_id, message_id, sent_at, now)
    if isinstance(outcome, Failed) and outcome.retryable:
        return [delete_timer(delivery_id, now + timedelta(seconds=outcome.retry_after or 30))]
    with sessions.begin() as writing:
        row = writing.get_one(Delivery, delivery_id, with_for_update=True)
        if isinstance(outcome, Sent):
            row.delete_status, row.deleted_at = "deleted", now
        elif isinstance(outcome, Skipped):
            row.delete_status = f"skipped:{outcome.reason}"
        else:
            row.delete_status = f"failed:{getattr(outcome, 'reason', 'blocked')}"
        status = row.delete_status
    log.info("delivery.auto_delete", delivery_id=delivery_id, status=status)
    return []


def pending_delete_timers(
    session: Session, due_before: datetime | None, after_id: int, limit: int
) -> list[tuple[int, Timer]]:
    stmt = (
        select(Delivery.id, Delivery.sent_at, Delivery.delete_after_s)
        .where(
            Delivery.status == "sent",
            Delivery.delete_after_s.is_not(None),
            Delivery.delete_status.is_(None),
            Delivery.id > after_id,
        )
        .order_by(Delivery.id)
        .limit(limit)
    )
    out = []
    for i, sent_at, after in session.execute(stmt):
        due = (sent_at or datetime.min.replace(tzinfo=UTC)) + timedelta(seconds=after)
        if due_before is None or due <= due_before:
            out.append((i, delete_timer(i, due)))
    return out
