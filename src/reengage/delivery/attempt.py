"""One attempt to send a delivery (see docs/deliveries.md).

It claims the row (`sending`, committed), asks the platform — whose adapter marks the
request in flight right before it leaves — and commits the answer. A crash before the claim
leaves `scheduled`, before the mark `sending` without `requested_at`: both are sent by the
next run, once. Only a request that left without an answer is ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import Contact, Conversation, Delivery, MediaAsset, MediaUpload
from reengage.delivery.auto_delete import delete_timer
from reengage.delivery.outbox import DeliveryRequest, delivery_timer, enqueue
from reengage.delivery.outcome import FINAL, Retry, claim, log_outcome, record, release_next
from reengage.domain.outbound import (
    Failed,
    Media,
    OutboundMessage,
    SendContext,
    SendOutcome,
    Superseded,
    message_from_json,
)
from reengage.domain.timer import Timer
from reengage.metrics import DELIVERIES
from reengage.ports import ActivityStore, ChannelProvider, Clock, TimerStore

log = structlog.get_logger(__name__)


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


@dataclass(frozen=True, slots=True)
class SendDeps:
    sessions: sessionmaker[Session]
    channels: ChannelProvider
    activity: ActivityStore | None = None
    clock: Clock | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's result, and the timers it sets going: the block after it, the
    auto-delete of what it sent; the keys it stops (a blocked contact's)."""

    result: DeliveryResult
    timers: list[Timer] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)


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
    attempt = send(SendDeps(sessions, channels, activity, clock), delivery_id, now, may_defer=True)
    retry = retry_timer(attempt.result)
    timers.cancel(attempt.cancel)
    timers.schedule(attempt.timers + ([retry] if retry is not None else []))
    return attempt.result


def send(
    deps: SendDeps,
    delivery_id: int,
    now: datetime,
    *,
    may_defer: bool = False,
    slot_at: float | None = None,
) -> Attempt:
    """Send an enqueued delivery; every outcome lands on its row. What must wait comes back
    as a result with `retry_at`: a pacing hand-back (reason `paced`, with `may_defer`), a
    platform's retryable refusal (`rate_limited`, `server_error`, ...), a hold for the minimum
    gap between proactive messages (`held_min_gap`), a request still in flight."""
    context = SendContext(now, None, may_defer, slot_at, idempotency_key=f"delivery_{delivery_id}")
    with deps.sessions.begin() as session:
        prepared = _prepare(session, delivery_id, now, deps.activity, context)
    if isinstance(prepared, Settled):
        settled = prepared.result
        if settled.status in FINAL:
            DELIVERIES.labels(prepared.purpose, settled.status, settled.reason or "").inc()
        return Attempt(settled, prepared.released)
    outcome = _request(deps, prepared, now)
    if isinstance(outcome, Superseded):
        log.warning("delivery.superseded", delivery_id=delivery_id)
        return Attempt(DeliveryResult(delivery_id, "sending"))
    with deps.sessions.begin() as session:
        row = session.get_one(Delivery, delivery_id, with_for_update=True)
        retry = record(session, row, prepared.message, outcome, now, deps.clock)
        log_outcome(session, row, now)
        after = release_next(session, row, now)
        result = _result(row, retry if isinstance(retry, Retry) else None)
        if result.status == "sent" and row.delete_after_s:
            after.append(delete_timer(row.id, now + timedelta(seconds=row.delete_after_s)))
    DELIVERIES.labels(row.purpose, result.status, result.reason or "").inc()
    log.info(
        f"delivery.{result.status}",
        delivery_id=delivery_id,
        reason=result.reason,
        purpose=row.purpose,
        bot_id=prepared.bot_id,
    )
    return Attempt(result, after, retry if isinstance(retry, list) else [])


def _request(deps: SendDeps, prepared: Prepared, now: datetime) -> SendOutcome:
    """Ask the platform; the adapter marks the request in flight right before it leaves."""
    context = replace(
        prepared.context, on_request=partial(_mark_requested, deps.sessions, prepared, now)
    )
    channel = deps.channels.channel_for(prepared.org_id, prepared.bot_id)
    try:
        return channel.send(prepared.chat_id, prepared.message, context)
    except Exception as exc:  # a bug, not a platform answer: what it means depends on the mark
        log.error("delivery.adapter_error", delivery_id=prepared.delivery_id, error=repr(exc))
        return Failed("adapter_error", not prepared.requested, detail=repr(exc)[:300])


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
