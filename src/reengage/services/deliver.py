"""Send one message through the idempotent delivery record.

scheduled → sending → sent | failed | skipped(reason). The row is claimed (`sending`) and
committed before the platform is called, and the outcome is committed after. A crash between
the two leaves `sending`: a re-run never sends again and records the send as ambiguous
(at most once). A crash before the claim leaves `scheduled`: the re-run sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
from reengage.ports import ChannelProvider, TimerStore
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


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivery_id: int
    status: str
    reason: str | None = None
    channel_message_id: str | None = None
    retry_after: float | None = None
    blocked: bool = False


def _result(row: Delivery, retry_after: float | None = None) -> DeliveryResult:
    return DeliveryResult(
        row.id, row.status, row.reason, row.channel_message_id, retry_after, row.reason == "blocked"
    )


def deliver(
    sessions: sessionmaker[Session],
    channels: ChannelProvider,
    timers: TimerStore,
    request: DeliveryRequest,
    now: datetime,
) -> DeliveryResult:
    """Send at most once per `dedup_key`; every outcome lands on the delivery row."""
    with sessions.begin() as session:
        row = _claim(session, request, now)
        if row.status != "sending":
            return _result(row)
        contact = session.get_one(Contact, request.contact_id)
        conversation = (
            session.get(Conversation, request.conversation_id) if request.conversation_id else None
        )
        message = _with_media(session, request, message_from_json(row.message))
        context = SendContext(now, conversation.window_expires_at if conversation else None)
        chat_id, delivery_id = contact.external_id, row.id
    channel = channels.channel_for(request.org_id, request.bot_id)
    outcome = channel.send(chat_id, message, context)
    with sessions.begin() as session:
        row = session.get_one(Delivery, delivery_id, with_for_update=True)
        cancel = _record(session, row, request, message, outcome, now)
        result = _result(row, outcome.retry_after if isinstance(outcome, Failed) else None)
    timers.cancel(cancel)
    log.info(
        f"delivery.{result.status}",
        delivery_id=result.delivery_id,
        reason=result.reason,
        purpose=request.purpose,
        bot_id=request.bot_id,
    )
    return result


def _claim(session: Session, request: DeliveryRequest, now: datetime) -> Delivery:
    session.execute(
        insert_for(session, Delivery)
        .values(
            org_id=request.org_id,
            bot_id=request.bot_id,
            contact_id=request.contact_id,
            conversation_id=request.conversation_id,
            dedup_key=request.dedup_key,
            purpose=request.purpose,
            status="scheduled",
            message=message_to_json(request.message),
            attempts=0,
            scheduled_at=now,
        )
        .on_conflict_do_nothing()
    )
    row = session.scalars(
        select(Delivery)
        .where(Delivery.org_id == request.org_id, Delivery.dedup_key == request.dedup_key)
        .with_for_update()
    ).one()
    if row.status in FINAL:
        return row
    if row.status == "sending":
        # A previous attempt died after claiming: the message may have gone out. Never resend.
        _finish(row, "failed", now, reason="ambiguous", error="interrupted while sending")
        return row
    contact = session.get_one(Contact, request.contact_id)
    if contact.blocked_at is not None:
        _finish(row, "skipped", now, reason="blocked")
        return row
    row.status, row.sending_at, row.attempts = "sending", now, row.attempts + 1
    return row


def _with_media(
    session: Session, request: DeliveryRequest, message: OutboundMessage
) -> OutboundMessage:
    media = message.media
    if media is None or media.asset_id is None:
        return message
    cached = session.get(MediaUpload, (request.bot_id, media.asset_id))
    asset = session.get_one(MediaAsset, media.asset_id)
    if asset.org_id != request.org_id:
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
    session: Session,
    row: Delivery,
    request: DeliveryRequest,
    message: OutboundMessage,
    outcome: SendOutcome,
    now: datetime,
) -> list[str]:
    """Write the outcome; return timer keys to cancel (a blocked contact stops everything)."""
    if isinstance(outcome, Sent):
        _finish(row, "sent", now)
        row.channel_message_id, row.sent_at, row.platform_status = outcome.message_id, now, "sent"
        media = message.media
        if media and media.asset_id and outcome.file_id and media.file_id is None:
            session.merge(
                MediaUpload(
                    bot_id=request.bot_id,
                    asset_id=media.asset_id,
                    file_id=outcome.file_id,
                    created_at=now,
                )
            )
    elif isinstance(outcome, Skipped):
        _finish(row, "skipped", now, reason=outcome.reason)
    elif isinstance(outcome, Blocked):
        _finish(row, "failed", now, reason="blocked", error=outcome.detail[:500])
        return mark_blocked(session, session.get_one(Contact, request.contact_id), now)
    elif outcome.retryable:
        # Nothing reached the user: the work may run again.
        row.status, row.reason, row.error = "scheduled", outcome.reason, outcome.detail[:500]
    else:
        _finish(row, "failed", now, reason=outcome.reason, error=outcome.detail[:500])
    return []
