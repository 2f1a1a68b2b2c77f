"""Send one message through the idempotent delivery record.

scheduled → sending → sent | failed | skipped(reason). A use case enqueues the row inside its
own transaction (with a `delivery` timer due at once), so deciding to send and recording the
decision are one commit. Sending claims the row (`sending`) and commits before the platform
is called, and commits the outcome after. A crash between the two leaves `sending`: a re-run
never sends again and records the send as ambiguous (at most once). A crash before the claim
leaves `scheduled`: the timer (or the sweep) sends it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import (
    Bot,
    Contact,
    Conversation,
    Delivery,
    Episode,
    MediaAsset,
    MediaUpload,
)
from reengage.adapters.db.session import insert_for
from reengage.domain import voice as vc
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
from reengage.ports import ActivityStore, ChannelProvider, Clock, TimerStore
from reengage.services.contacts import mark_blocked
from reengage.services.event_log import append_event
from reengage.services.voice import voice_for

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
    # Set when reengage speaks first (see `domain.voice`): one group per decision.
    proactive_group: str | None = None
    episode_id: int | None = None
    after_id: int | None = None  # the delivery that must be settled first (the block before)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivery_id: int
    status: str
    reason: str | None = None
    channel_message_id: str | None = None
    # A `scheduled` result is tried again at `retry_at`, in its reserved platform slot if any.
    retry_at: datetime | None = None
    slot_at: float | None = None
    blocked: bool = False


def delivery_timer(
    delivery_id: int,
    due_at: datetime,
    *,
    slot_at: float | None = None,
    queue: str | None = None,
) -> Timer:
    """The timer that sends a delivery; `slot_at` when its pacing slot is already reserved;
    `queue` to run it on another worker queue than its purpose's."""
    payload: Payload = {"delivery_id": delivery_id}
    if slot_at is not None:
        payload["slot_at"] = slot_at
    if queue:
        payload["queue"] = queue
    return Timer(
        timer_key(Purpose.DELIVERY, str(delivery_id)), Purpose.DELIVERY, due_at, 0, payload
    )


def retry_timer(result: DeliveryResult, queue: str | None = None) -> Timer | None:
    """The timer that tries a `scheduled` result again, if it is one."""
    if result.status != "scheduled" or result.retry_at is None:
        return None
    return delivery_timer(result.delivery_id, result.retry_at, slot_at=result.slot_at, queue=queue)


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
            episode_id=request.episode_id,
            after_id=request.after_id,
            dedup_key=request.dedup_key,
            purpose=request.purpose,
            proactive_group=request.proactive_group,
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
    clock: Clock | None = None,
) -> DeliveryResult:
    """Enqueue and send at once (at most once per `dedup_key`); what has to wait (pacing, a
    429, the minimum gap) is left to its delivery timer."""
    with sessions.begin() as session:
        delivery_id = enqueue(session, request, now)
    result = send(
        sessions, channels, timers, delivery_id, now, activity, clock=clock, may_defer=True
    )
    retry = retry_timer(result)
    if retry is not None:
        timers.schedule([retry])
    return result


def send(
    sessions: sessionmaker[Session],
    channels: ChannelProvider,
    timers: TimerStore,
    delivery_id: int,
    now: datetime,
    activity: ActivityStore | None = None,
    *,
    clock: Clock | None = None,
    may_defer: bool = False,
    slot_at: float | None = None,
) -> DeliveryResult:
    """Send an enqueued delivery; every outcome lands on its row. What must wait comes back
    as a `scheduled` result with `retry_at`: a pacing hand-back (reason `paced`, with
    `may_defer`), a platform's retryable refusal (`rate_limited`, ...), a hold for the
    minimum gap between proactive messages (`held_min_gap`)."""
    with sessions.begin() as session:
        prepared = _prepare(
            session, delivery_id, now, activity, SendContext(now, None, may_defer, slot_at)
        )
    if isinstance(prepared, Settled):
        timers.schedule(prepared.released)
        return prepared.result
    channel = channels.channel_for(prepared.org_id, prepared.bot_id)
    outcome = channel.send(prepared.chat_id, prepared.message, prepared.context)
    with sessions.begin() as session:
        row = session.get_one(Delivery, delivery_id, with_for_update=True)
        cancel = _record(session, row, prepared.message, outcome, now)
        log_outcome(session, row, now)
        released = _release_next(session, row, now)
        retry = None
        if isinstance(outcome, Failed) and outcome.retryable:
            retry = _retry(clock, now, outcome)
        result = _result(row, retry)
        deletion = (
            delete_timer(row.id, now + timedelta(seconds=row.delete_after_s))
            if result.status == "sent" and row.delete_after_s
            else None
        )
    timers.cancel(cancel)
    timers.schedule(released + ([deletion] if deletion is not None else []))
    log.info(
        f"delivery.{result.status}",
        delivery_id=delivery_id,
        reason=result.reason,
        purpose=row.purpose,
        bot_id=prepared.bot_id,
    )
    return result


@dataclass(frozen=True, slots=True)
class Settled:
    """Decided without a request: skipped, held, or waiting for the block before."""

    result: DeliveryResult
    released: list[Timer]


@dataclass(frozen=True, slots=True)
class Prepared:
    """Claimed (`sending`, committed): what the platform is asked."""

    org_id: int
    bot_id: int
    chat_id: str
    message: OutboundMessage
    context: SendContext


def _prepare(
    session: Session,
    delivery_id: int,
    now: datetime,
    activity: ActivityStore | None,
    context: SendContext,
) -> Settled | Prepared:
    row = session.get_one(Delivery, delivery_id, with_for_update=True)
    contact = session.get_one(
        Contact, row.contact_id, with_for_update=row.proactive_group is not None
    )
    hold = _claim(session, row, contact, now, activity)
    if row.status != "sending":
        log_outcome(session, row, now)
        return Settled(_result(row, hold), _release_next(session, row, now))
    conversation = _conversation(session, row)
    return Prepared(
        row.org_id,
        row.bot_id,
        contact.external_id,
        _with_media(session, row, message_from_json(row.message)),
        replace(
            context, window_expires_at=conversation.window_expires_at if conversation else None
        ),
    )


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime
    slot_at: float | None = None


def _retry(clock: Clock | None, now: datetime, outcome: Failed) -> Retry:
    """When to try again: at the reserved slot, or after the platform's wait (real time,
    however fast a demo's clock runs)."""
    wait = outcome.retry_after if outcome.retry_after is not None else 30.0
    if clock is None:
        return Retry(now + timedelta(seconds=wait), outcome.slot_at)
    moment = outcome.slot_at if outcome.slot_at is not None else clock.real_time() + wait
    return Retry(clock.at_real(moment), outcome.slot_at)


def _result(row: Delivery, retry: Retry | None = None) -> DeliveryResult:
    at = retry.at if retry and row.status == "scheduled" else None
    slot = retry.slot_at if retry and row.status == "scheduled" else None
    return DeliveryResult(
        row.id, row.status, row.reason, row.channel_message_id, at, slot, row.reason == "blocked"
    )


def _conversation(session: Session, row: Delivery) -> Conversation | None:
    return session.get(Conversation, row.conversation_id) if row.conversation_id else None


def _claim(
    session: Session, row: Delivery, contact: Contact, now: datetime, activity: ActivityStore | None
) -> Retry | None:
    """Take the row for sending (`sending`, committed before the platform is called), or
    settle it without a request; a proactive message too close to the last one is held."""
    if row.status in FINAL:
        return None
    if row.status == "sending":
        # A previous attempt died after claiming: the message may have gone out. Never resend.
        _finish(row, "failed", now, reason="ambiguous", error="interrupted while sending")
        return None
    refusal = _refusal(session, row, contact, activity)
    if refusal is not None:
        _finish(row, "skipped", now, reason=refusal)
        return None
    if row.after_id is not None:
        before = session.get(Delivery, row.after_id)
        if before is not None and before.status not in FINAL:
            row.reason = "after_previous"  # released when the block before is settled
            return None
    if row.proactive_group is not None:
        bot = session.get_one(Bot, row.bot_id)
        decision = vc.decide_proactive(
            voice_for(session, bot),
            group=row.proactive_group,
            opted_out=contact.opted_out_at is not None,
            last_at=contact.last_proactive_at,
            last_group=contact.last_proactive_group,
            now=now,
        )
        if isinstance(decision, vc.Refuse):
            _finish(row, "skipped", now, reason=decision.reason)
            return None
        if isinstance(decision, vc.Hold):
            row.reason = "held_min_gap"
            log.info("delivery.held", delivery_id=row.id, until=decision.until.isoformat())
            return Retry(decision.until)
        contact.last_proactive_at, contact.last_proactive_group = now, row.proactive_group
    row.status, row.reason, row.sending_at, row.attempts = "sending", None, now, row.attempts + 1
    return None


def _release_next(session: Session, row: Delivery, now: datetime) -> list[Timer]:
    """A settled delivery lets the block after it go (if it already came and waited)."""
    if row.status not in FINAL:
        return []
    waiting = session.scalars(
        select(Delivery.id).where(
            Delivery.after_id == row.id,
            Delivery.status == "scheduled",
            Delivery.reason == "after_previous",
        )
    ).all()
    return [delivery_timer(i, now) for i in waiting]


def _refusal(
    session: Session, row: Delivery, contact: Contact, activity: ActivityStore | None
) -> str | None:
    """Why this message must not go out any more, if it must not."""
    if contact.blocked_at is not None:
        return "blocked"
    if row.guard_seq is not None and current_seq(session, contact, activity) != row.guard_seq:
        return "user_active"
    if row.episode_id is not None:
        episode = session.get(Episode, row.episode_id)
        if episode is not None and episode.status not in ("running", "completed"):
            return episode.end_reason or episode.status
    return None


def current_seq(session: Session, contact: Contact, activity: ActivityStore | None) -> int | None:
    """The contact's latest activity version: hot in Redis, or its newest conversation's."""
    hot = activity.hot_seq(contact.bot_id, contact.external_id) if activity else None
    if hot is not None:
        return hot
    seq: int | None = session.scalar(
        select(func.max(Conversation.activity_seq)).where(Conversation.contact_id == contact.id)
    )
    return seq


def log_outcome(session: Session, row: Delivery, now: datetime) -> None:
    """A reminder is in the conversation's log once its fate is known: sent, or skipped with
    the reason (the user answered first, opted out, ...)."""
    if row.purpose != "reminder" or row.status not in FINAL or row.conversation_id is None:
        return
    conversation = session.get(Conversation, row.conversation_id)
    if conversation is None:
        return
    kind = {"sent": "reminder_sent", "skipped": "reminder_skipped"}.get(
        row.status, "reminder_failed"
    )
    append_event(
        session,
        conversation,
        kind=kind,
        reason=row.reason or kind,
        dedup_key=f"{row.dedup_key}:outcome",
        now=now,
        detail={"delivery_id": row.id},
    )


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


@dataclass(frozen=True, slots=True)
class DeliveryDeps:
    sessions: sessionmaker[Session]
    channels: ChannelProvider
    timers: TimerStore
    activity: ActivityStore
    clock: Clock | None = None


def handle_delivery_timer(
    session: Session, timer: Timer, now: datetime, *, deps: DeliveryDeps
) -> list[Timer]:
    """The `delivery` timer: send the row; what has to wait comes back at its time."""
    delivery_id = int(timer.payload["delivery_id"] or 0)
    slot = timer.payload.get("slot_at")
    result = send(
        deps.sessions,
        deps.channels,
        deps.timers,
        delivery_id,
        now,
        deps.activity,
        clock=deps.clock,
        may_defer=True,
        slot_at=float(slot) if isinstance(slot, int | float) else None,
    )
    queue = timer.payload.get("queue")
    retry = retry_timer(result, str(queue) if queue else None)
    return [retry] if retry else []


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
