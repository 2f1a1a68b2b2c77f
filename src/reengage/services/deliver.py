"""Send one message through the idempotent delivery record.

scheduled → sending → sent | failed | skipped(reason). A use case enqueues the row inside its
own transaction (with a `delivery` timer due at once), so deciding to send and recording the
decision are one commit. Sending claims the row (`sending`) and commits before the platform
is called, and commits the outcome after. A crash between the two leaves `sending`: a re-run
never sends again and records the send as ambiguous (at most once). A crash before the claim
leaves `scheduled`: the timer (or the sweep) sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import Contact, Conversation, Delivery, MediaAsset, MediaUpload
from reengage.adapters.db.session import insert_for
from reengage.domain.outbound import (
    Blocked,
    Failed,
    Media,
    OutboundMessage,
    SendContext,
    SendOutcome,
    Sent,
    Skipped,
    message_from_json,
    message_to_json,
)
from reengage.domain.timer import Payload, Purpose, Timer, timer_key
from reengage.ports import ActivityStore, ChannelProvider, TimerStore
from reengage.services.contacts import mark_blocked

log = structlog.get_logger(__name__)

FINAL = {"sent", "failed", "skipped"}


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    org_id: int
    bot_id: int
    contact_id: int
    dedup_key: str
    purpose: str
    message: OutboundMessage
    conversation_id: int | None = None
    guard_seq: int | None = None
    delete_after: timedelta | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivery_id: int
    status: str
    reason: str | None = None
    channel_message_id: str | None = None
    retry_after: float | None = None
    blocked: bool = False


def delivery_timer(
    delivery_id: int, due_at: datetime, *, slot_held: bool = False, queue: str | None = None
) -> Timer:
    """The timer that sends a delivery; `slot_held` when its pacing slot is already reserved
    for `due_at`; `queue` to run it on another worker queue than its purpose's."""
    payload: Payload = {"delivery_id": delivery_id}
    if slot_held:
        payload["slot_held"] = True
    if queue:
        payload["queue"] = queue
    return Timer(
        timer_key(Purpose.DELIVERY, str(delivery_id)), Purpose.DELIVERY, due_at, 0, payload
    )


def _result(row: Delivery, retry_after: float | None = None) -> DeliveryResult:
    return DeliveryResult(
        row.id, row.status, row.reason, row.channel_message_id, retry_after, row.reason == "blocked"
    )


def enqueue(session: Session, request: DeliveryRequest, now: datetime) -> int:
    """Create the delivery row (once per key) in the caller's transaction; return its id.
    Publish `delivery_timer(id, now)` after the commit to have it sent."""
    session.execute(
        insert_for(session, Delivery)
        .values(
            org_id=request.org_id,
            bot_id=request.bot_id,
            contact_id=request.contact_id,
            conversation_id=request.conversation_id,
            dedup_key=request.dedup_key,
            purpose=request.purpose,
            guard_seq=request.guard_seq,
            delete_after_s=int(request.delete_after.total_seconds())
            if request.delete_after
            else None,
            status="scheduled",
            message=message_to_json(request.message),
            attempts=0,
            scheduled_at=now,
        )
        .on_conflict_do_nothing()
    )
    delivery_id: int = session.scalars(
        select(Delivery.id).where(
            Delivery.org_id == request.org_id, Delivery.dedup_key == request.dedup_key
        )
    ).one()
    return delivery_id


def deliver(
    sessions: sessionmaker[Session],
    channels: ChannelProvider,
    timers: TimerStore,
    request: DeliveryRequest,
    now: datetime,
    activity: ActivityStore | None = None,
) -> DeliveryResult:
    """Enqueue and send at once (at most once per `dedup_key`)."""
    with sessions.begin() as session:
        delivery_id = enqueue(session, request, now)
    return send(sessions, channels, timers, delivery_id, now, activity)


def send(
    sessions: sessionmaker[Session],
    channels: ChannelProvider,
    timers: TimerStore,
    delivery_id: int,
    now: datetime,
    activity: ActivityStore | None = None,
    *,
    may_defer: bool = False,
    slot_held: bool = False,
) -> DeliveryResult:
    """Send an enqueued delivery; every outcome lands on its row. With `may_defer`, a long
    pacing wait comes back as a `scheduled` result with `retry_after` (reason `paced`)."""
    with sessions.begin() as session:
        row = session.get_one(Delivery, delivery_id, with_for_update=True)
        contact = session.get_one(Contact, row.contact_id)
        _claim(session, row, contact, now, activity)
        if row.status != "sending":
            return _result(row)
        conversation = (
            session.get(Conversation, row.conversation_id) if row.conversation_id else None
        )
        message = _with_media(session, row, message_from_json(row.message))
        context = SendContext(
            now,
            conversation.window_expires_at if conversation else None,
            may_defer=may_defer,
            slot_held=slot_held,
        )
        chat_id, org_id, bot_id = contact.external_id, row.org_id, row.bot_id
    outcome = channels.channel_for(org_id, bot_id).send(chat_id, message, context)
    with sessions.begin() as session:
        row = session.get_one(Delivery, delivery_id, with_for_update=True)
        cancel = _record(session, row, message, outcome, now)
        result = _result(row, outcome.retry_after if isinstance(outcome, Failed) else None)
        deletion = (
            delete_timer(row.id, now + timedelta(seconds=row.delete_after_s))
            if result.status == "sent" and row.delete_after_s
            else None
        )
    timers.cancel(cancel)
    if deletion is not None:
        timers.schedule([deletion])
    log.info(
        f"delivery.{result.status}",
        delivery_id=delivery_id,
        reason=result.reason,
        purpose=row.purpose,
        bot_id=bot_id,
    )
    return result


def _claim(
    session: Session, row: Delivery, contact: Contact, now: datetime, activity: ActivityStore | None
) -> None:
    if row.status in FINAL:
        return
    if row.status == "sending":
        # A previous attempt died after claiming: the message may have gone out. Never resend.
        _finish(row, "failed", now, reason="ambiguous", error="interrupted while sending")
        return
    if contact.blocked_at is not None:
        _finish(row, "skipped", now, reason="blocked")
        return
    if row.guard_seq is not None and current_seq(session, row, contact, activity) != row.guard_seq:
        _finish(row, "skipped", now, reason="user_active")
        return
    row.status, row.sending_at, row.attempts = "sending", now, row.attempts + 1


def current_seq(
    session: Session, row: Delivery, contact: Contact, activity: ActivityStore | None
) -> int | None:
    hot = activity.hot_seq(contact.bot_id, contact.external_id) if activity else None
    if hot is not None:
        return hot
    conv = session.get(Conversation, row.conversation_id) if row.conversation_id else None
    return conv.activity_seq if conv else None


def _with_media(session: Session, row: Delivery, message: OutboundMessage) -> OutboundMessage:
    media = message.media
    if media is None or media.asset_id is None:
        return message
    cached = session.get(MediaUpload, (row.bot_id, media.asset_id))
    asset = session.get_one(MediaAsset, media.asset_id)
    if asset.org_id != row.org_id:
        raise ValueError(f"media asset {asset.id} belongs to another organization")
    content = None if cached else asset.content
    resolved = Media(
        asset.id,
        cached.file_id if cached else None,
        None,
        content,
        asset.filename,
        asset.content_type,
    )
    return OutboundMessage(message.kind, message.text, resolved, message.template)


def _finish(
    row: Delivery,
    status: str,
    now: datetime,
    *,
    reason: str | None = None,
    error: str | None = None,
) -> None:
    row.status, row.reason, row.error, row.finished_at = status, reason, error, now


def _record(
    session: Session, row: Delivery, message: OutboundMessage, outcome: SendOutcome, now: datetime
) -> list[str]:
    """Write the outcome; return timer keys to cancel (a blocked contact stops everything)."""
    if isinstance(outcome, Sent):
        _finish(row, "sent", now)
        row.channel_message_id, row.sent_at, row.platform_status = outcome.message_id, now, "sent"
        media = message.media
        if media and media.asset_id and outcome.file_id and media.file_id is None:
            session.merge(
                MediaUpload(
                    bot_id=row.bot_id,
                    asset_id=media.asset_id,
                    file_id=outcome.file_id,
                    created_at=now,
                )
            )
    elif isinstance(outcome, Skipped):
        _finish(row, "skipped", now, reason=outcome.reason)
    elif isinstance(outcome, Blocked):
        _finish(row, "failed", now, reason="blocked", error=outcome.detail[:500])
        return mark_blocked(session, session.get_one(Contact, row.contact_id), now)
    elif outcome.retryable:
        # Nothing reached the user: the work may run again.
        row.status, row.reason, row.error = "scheduled", outcome.reason, outcome.detail[:500]
    else:
        _finish(row, "failed", now, reason=outcome.reason, error=outcome.detail[:500])
    return []


def handle_delivery_timer(
    session: Session,
    timer: Timer,
    now: datetime,
    *,
    sessions: sessionmaker[Session],
    channels: ChannelProvider,
    timers: TimerStore,
    activity: ActivityStore,
) -> list[Timer]:
    """The `delivery` timer: send the row; a retryable refusal comes back after its wait."""
    delivery_id = int(timer.payload["delivery_id"] or 0)
    held = bool(timer.payload.get("slot_held"))
    result = send(
        sessions, channels, timers, delivery_id, now, activity, may_defer=True, slot_held=held
    )
    if result.status == "scheduled":
        wait = timedelta(seconds=result.retry_after or 30)
        queue = timer.payload.get("queue")
        return [
            delivery_timer(
                delivery_id,
                now + wait,
                slot_held=result.reason == "paced",
                queue=str(queue) if queue else None,
            )
        ]
    return []


def pending_delivery_timers(
    session: Session, due_before: datetime | None, after_id: int, limit: int
) -> list[tuple[int, Timer]]:
    """Deliveries still to send, as the timers that send them (rebuild and sweep)."""
    stmt = (
        select(Delivery.id, Delivery.scheduled_at)
        .where(Delivery.status == "scheduled", Delivery.id > after_id)
        .order_by(Delivery.id)
        .limit(limit)
    )
    if due_before is not None:
        stmt = stmt.where(Delivery.scheduled_at <= due_before)
    return [(i, delivery_timer(i, at)) for i, at in session.execute(stmt)]


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
