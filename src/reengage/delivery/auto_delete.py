"""Auto-delete: a sent message whose block asked for it is deleted after its time, where the
platform still allows it (Telegram: 48 h); the outcome lands on the delivery row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import Contact, Delivery
from reengage.domain.outbound import Failed, SendOutcome, Sent, Skipped
from reengage.domain.timer import Purpose, Timer, timer_key
from reengage.ports import ChannelProvider
from reengage.timers.handler import NOTHING, Outcome

log = structlog.get_logger(__name__)


def delete_timer(delivery_id: int, due_at: datetime) -> Timer:
    return Timer(
        timer_key(Purpose.AUTO_DELETE, str(delivery_id)),
        Purpose.AUTO_DELETE,
        due_at,
        0,
        {"delivery_id": delivery_id},
    )


@dataclass(frozen=True, slots=True)
class AutoDeleteHandler:
    """Delete a sent message whose block asked for it; the platform's rules decide whether it
    can still be done (Telegram: 48 h), and the outcome lands on the delivery row. No
    transaction is held while the platform is called."""

    sessions: sessionmaker[Session]
    channels: ChannelProvider
    purpose: str = Purpose.AUTO_DELETE
    queue: str = "timers"

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        delivery_id = int(timer.payload["delivery_id"] or 0)
        with self.sessions() as reading:
            row = reading.get(Delivery, delivery_id)
            if row is None or row.delete_status is not None or row.channel_message_id is None:
                return NOTHING
            contact = reading.get_one(Contact, row.contact_id)
            org_id, bot_id, chat_id = row.org_id, row.bot_id, contact.external_id
            message_id, sent_at = row.channel_message_id, row.sent_at or row.finished_at or now
        outcome = self.channels.channel_for(org_id, bot_id).delete(
            chat_id, message_id, sent_at, now
        )
        if isinstance(outcome, Failed) and outcome.retryable:
            wait = timedelta(seconds=outcome.retry_after or 30)
            return Outcome([delete_timer(delivery_id, now + wait)])
        with self.sessions.begin() as writing:
            row = writing.get_one(Delivery, delivery_id, with_for_update=True)
            row.delete_status = _delete_status(outcome)
            if isinstance(outcome, Sent):
                row.deleted_at = now
            status = row.delete_status
        log.debug("delivery.auto_delete", delivery_id=delivery_id, status=status)
        return NOTHING

    def pending(
        self, session: Session, due_before: datetime | None, after_id: int, limit: int
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


def _delete_status(outcome: SendOutcome) -> str:
    if isinstance(outcome, Sent):
        return "deleted"
    if isinstance(outcome, Skipped):
        return f"skipped:{outcome.reason}"
    return f"failed:{getattr(outcome, 'reason', 'blocked')}"
