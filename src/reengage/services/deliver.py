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
from datetime import datetime, timedelta
from functools import partial

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import Contact, Conversation, Delivery, MediaAsset, MediaUpload
from reengage.adapters.db.session import insert_for
from reengage.domain.outbound import (
    Failed,
    Media,
    OutboundMessage,
    SendContext,
    Superseded,
    message_from_json,
    message_to_json,
)
from reengage.domain.timer import Timer
from reengage.metrics import DELIVERIES
from reengage.ports import ActivityStore, ChannelProvider, Clock, TimerStore
from reengage.services.auto_delete import delete_timer
from reengage.services.delivery_outcome import (
    FINAL,
    Retry,
    claim,
    delivery_timer,
    log_outcome,
    record,
    release_next,
)
from reengage.services.errors import InvalidInput, NotFound

__all__ = ["DeliveryRequest", "DeliveryResult", "deliver", "delivery_timer", "enqueue", "send"]

log = structlog.get_logger(__name__)


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
    # Retries stop here (the step's send window closed, a reminder became stale).
    valid_until: datetime | None = None
    # An unknown outcome is sent once more (at least once) instead of skipped (at most once).
    retry_ambiguous: bool = False


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


def retry_timer(result: DeliveryResult, queue: str | None = None) -> Timer | None:
    """The timer that tries a result again, if it is to be tried again."""
    if result.retry_at is None:
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
            valid_until=request.valid_until,
            retry_ambiguous=request.retry_ambiguous,
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
            session,
            delivery_id,
            now,
            activity,
            SendContext(now, None, may_defer, slot_at, idempotency_key=f"delivery_{delivery_id}"),
        )
    if isinstance(prepared, Settled):
        timers.schedule(prepared.released)
        settled = prepared.result
        if settled.status in FINAL:
            DELIVERIES.labels(prepared.purpose, settled.status, settled.reason or "").inc()
        return settled
    context = replace(
        prepared.context, on_request=partial(_mark_requested, sessions, prepared, now)
    )
    channel = channels.channel_for(prepared.org_id, prepared.bot_id)
    try:
        outcome = channel.send(prepared.chat_id, prepared.message, context)
    except Exception as exc:  # a bug, not a platform answer: what it means depends on the mark
        log.error("delivery.adapter_error", delivery_id=delivery_id, error=repr(exc)[:300])
        outcome = Failed("adapter_error", not prepared.requested, detail=repr(exc)[:300])
    if isinstance(outcome, Superseded):
        log.warning("delivery.superseded", delivery_id=delivery_id)
        return DeliveryResult(delivery_id, "sending")
    with sessions.begin() as session:
        row = session.get_one(Delivery, delivery_id, with_for_update=True)
        retry = record(session, row, prepared.message, outcome, now, clock)
        cancel = retry if isinstance(retry, list) else []
        log_outcome(session, row, now)
        released = release_next(session, row, now)
        result = _result(row, retry if isinstance(retry, Retry) else None)
        deletion = (
            delete_timer(row.id, now + timedelta(seconds=row.delete_after_s))
            if result.status == "sent" and row.delete_after_s
            else None
        )
    timers.cancel(cancel)
    timers.schedule(released + ([deletion] if deletion is not None else []))
    DELIVERIES.labels(row.purpose, result.status, result.reason or "").inc()
    log.info(
        f"delivery.{result.status}",
        delivery_id=delivery_id,
        reason=result.reason,
        purpose=row.purpose,
        bot_id=prepared.bot_id,
    )
    return result


def _mark_requested(sessions: sessionmaker[Session], prepared: Prepared, now: datetime) -> bool:
    """The attempt that holds the claim marks its request in flight, committed, right before
    it leaves; False when a later run took the delivery over (then it must not be sent)."""
    with sessions.begin() as session:
        marked = session.execute(
            update(Delivery)
            .where(
                Delivery.id == prepared.delivery_id,
                Delivery.status == "sending",
                Delivery.attempts == prepared.attempt,
                Delivery.requested_at.is_(None),
            )
            .values(requested_at=now)
        )
    prepared.requested = bool(marked.rowcount)  # type: ignore[attr-defined]
    return prepared.requested


@dataclass(frozen=True, slots=True)
class Settled:
    """Decided without a request: skipped, held, or waiting for the block before."""

    result: DeliveryResult
    released: list[Timer]
    purpose: str


@dataclass(slots=True)
class Prepared:
    """Claimed (`sending`, committed) by attempt `attempt`: what the platform is asked."""

    delivery_id: int
    attempt: int
    org_id: int
    bot_id: int
    chat_id: str
    message: OutboundMessage
    context: SendContext
    requested: bool = False  # the in-flight mark was made


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
    hold = claim(session, row, contact, now, activity)
    if row.status != "sending" or hold is not None:  # settled, held, or still in flight
        log_outcome(session, row, now)
        return Settled(_result(row, hold), release_next(session, row, now), row.purpose)
    conversation = _conversation(session, row)
    return Prepared(
        row.id,
        row.attempts,
        row.org_id,
        row.bot_id,
        contact.external_id,
        _with_media(session, row, message_from_json(row.message)),
        replace(
            context, window_expires_at=conversation.window_expires_at if conversation else None
        ),
    )


def _result(row: Delivery, retry: Retry | None = None) -> DeliveryResult:
    pending = row.status in ("scheduled", "sending")
    at = retry.at if retry and pending else None
    slot = retry.slot_at if retry and pending else None
    return DeliveryResult(
        row.id, row.status, row.reason, row.channel_message_id, at, slot, row.reason == "blocked"
    )


def _conversation(session: Session, row: Delivery) -> Conversation | None:
    return session.get(Conversation, row.conversation_id) if row.conversation_id else None


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


def resend_delivery(
    session: Session, org_id: int, delivery_id: int, now: datetime
) -> tuple[int, Timer | None]:
    """A new delivery of a failed one's message, under its rules; once per failed delivery
    (its key is `resend:<id>`). Returns its id and the timer to publish after the commit."""
    row = session.scalar(
        select(Delivery).where(Delivery.org_id == org_id, Delivery.id == delivery_id)
    )
    if row is None:
        raise NotFound(f"delivery {delivery_id} not found", "delivery_id")
    if row.status != "failed":
        raise InvalidInput(f"only a failed delivery can be sent again (this one is {row.status})")
    request = DeliveryRequest(
        row.org_id,
        row.bot_id,
        row.contact_id,
        f"resend:{row.id}",
        row.purpose,
        message_from_json(row.message),
        row.conversation_id,
        row.guard_seq,
        timedelta(seconds=row.delete_after_s) if row.delete_after_s else None,
        proactive_group=row.proactive_group,
        episode_id=row.episode_id,
    )
    new_id = enqueue(session, request, now)
    fresh = session.get_one(Delivery, new_id).status == "scheduled"
    log.info("delivery.resend", delivery_id=row.id, new_delivery_id=new_id)
    return new_id, delivery_timer(new_id, now) if fresh else None
