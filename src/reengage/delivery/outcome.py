"""What one attempt decides about a delivery row: take it, settle it without a request,
hold it, or, after the request, record the platform's answer and when to try again.

The rules of ambiguity and retries are the domain's (`domain.delivery`); this module applies
them to the row, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import (
    Bot,
    Contact,
    Conversation,
    Delivery,
    Episode,
    MediaUpload,
    Organization,
)
from reengage.adapters.db.sets import among
from reengage.delivery.outbox import delivery_timer
from reengage.domain import delivery as dl
from reengage.domain import event as ev
from reengage.domain import voice as vc
from reengage.domain.bot_state import halted
from reengage.domain.outbound import (
    Blocked,
    Failed,
    OutboundMessage,
    SendOutcome,
    Sent,
    Skipped,
)
from reengage.domain.timer import Timer
from reengage.events.outbox import contact_ref, emit, emit_for_conversation, iso
from reengage.ports import ActivityStore, Clock
from reengage.services.contacts import mark_blocked
from reengage.services.event_log import NewEvent, appended_events
from reengage.services.voice import voice_for

log = structlog.get_logger(__name__)

FINAL = {"sent", "failed", "skipped"}


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime
    slot_at: float | None = None


def retry_at(clock: Clock | None, now: datetime, outcome: Failed, attempts: int) -> Retry:
    """When to try again: at the reserved slot, after the platform's wait, or after a backoff
    that grows with the attempts (real time, however fast a demo's clock runs)."""
    if outcome.retry_after is not None:
        wait = outcome.retry_after
    else:
        wait = dl.backoff(attempts).total_seconds()
    if clock is None:
        return Retry(now + timedelta(seconds=wait), outcome.slot_at)
    # `wait` real seconds in this clock's time, from `now` (the time the run works in).
    return Retry(now + (clock.at_real(clock.real_time() + wait) - clock.now()), outcome.slot_at)


def claim(
    session: Session, row: Delivery, contact: Contact, now: datetime, activity: ActivityStore | None
) -> Retry | None:
    """Take the row for sending (`sending`, committed before the platform is called), or
    settle it without a request; a proactive message too close to the last one is held."""
    if row.status in FINAL:
        return None
    if row.status == "sending":
        interrupted = _interrupted(row, now)
        if interrupted is not None:
            return interrupted if isinstance(interrupted, Retry) else None
    refusal = _refusal(session, row, contact, activity, now)
    if refusal is not None:
        finish(row, "skipped", now, reason=refusal)
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
            finish(row, "skipped", now, reason=decision.reason)
            return None
        if isinstance(decision, vc.Hold):
            row.reason = "held_min_gap"
            log.debug("delivery.held", delivery_id=row.id, until=decision.until.isoformat())
            return Retry(decision.until)
        contact.last_proactive_at, contact.last_proactive_group = now, row.proactive_group
    row.status, row.reason, row.sending_at = "sending", None, now
    row.requested_at, row.attempts = None, row.attempts + 1
    return None


def _interrupted(row: Delivery, now: datetime) -> Retry | bool | None:
    """An earlier attempt left the row `sending` (it died, or still runs): None to claim it
    again, a Retry to look again later, True when it was settled as ambiguous."""
    decision = dl.decide_interrupted(row.requested_at, row.retry_ambiguous, row.ambiguous_at, now)
    if isinstance(decision, dl.InFlight):
        return Retry(decision.until)
    if isinstance(decision, dl.Ambiguous):
        finish(row, "failed", now, reason="ambiguous", error="no answer: the request left")
        return True
    if decision.ambiguous:
        row.ambiguous_at = now
        log.warning("delivery.ambiguous_retried", delivery_id=row.id)
    else:
        log.info("delivery.reclaimed", delivery_id=row.id, reason="not_requested")
    return None


def release_next(session: Session, row: Delivery, now: datetime) -> list[Timer]:
    """A settled delivery lets the block after it go (if it already came and waited)."""
    if row.status not in FINAL:
        return []
    table = Delivery.__table__.c  # Core: other rows are read, this one's changes need no flush
    waiting = session.scalars(
        select(table.id).where(
            table.after_id == row.id,
            table.status == "scheduled",
            table.reason == "after_previous",
        )
    ).all()
    return [delivery_timer(i, now) for i in waiting]


def _refusal(
    session: Session,
    row: Delivery,
    contact: Contact,
    activity: ActivityStore | None,
    now: datetime,
) -> str | None:
    """Why this message must not go out any more, if it must not."""
    bot = session.get_one(Bot, row.bot_id)  # held: no statement
    stopped = halted(bot.disabled_at, bot.deleted_at)
    if stopped is not None:
        return stopped
    if contact.blocked_at is not None:
        return "blocked"
    if not dl.still_valid(row.valid_until, now):
        return "expired"
    if row.guard_seq is not None and current_seq(session, contact, activity) != row.guard_seq:
        return "user_active"
    if row.episode_id is not None:
        episode = session.get(Episode, row.episode_id)
        if episode is not None and episode.status not in ("running", "completed"):
            return episode.end_reason or episode.status
    return None


def current_seq(session: Session, contact: Contact, activity: ActivityStore | None) -> int | None:
    """The contact's latest activity version: hot in Redis, or its newest conversation's."""
    return latest_seqs(session, activity, [contact]).get(contact.id)


def latest_seqs(
    session: Session, activity: ActivityStore | None, contacts: Sequence[Contact]
) -> dict[int, int | None]:
    """`current_seq` for many contacts: the cold ones read in one statement."""
    hot = activity.hot_seqs([(c.bot_id, c.external_id) for c in contacts]) if activity else None
    seqs: dict[int, int | None] = {c.id: hot[i] if hot else None for i, c in enumerate(contacts)}
    cold = [contact_id for contact_id, seq in seqs.items() if seq is None]
    if cold:
        found = session.execute(
            select(Conversation.contact_id, func.max(Conversation.activity_seq))
            .where(among(session, Conversation.contact_id, cold))
            .group_by(Conversation.contact_id)
        ).tuples()
        seqs.update({contact_id: seq for contact_id, seq in found})
    return seqs


def log_outcome(session: Session, row: Delivery, now: datetime) -> None:
    """A reminder is in the conversation's log once its fate is known: sent, or skipped with
    the reason (the user answered first, opted out, ...)."""
    log_outcomes(session, [row], now)


def log_outcomes(session: Session, rows: Sequence[Delivery], now: datetime) -> None:
    """`log_outcome` of many rows, their log lines in one statement."""
    for row in rows:
        if row.status == "failed":
            _tell_failed(session, row, now)
    lines: list[tuple[Delivery, Conversation, NewEvent]] = []
    for row in rows:
        if row.purpose != "reminder" or row.status not in FINAL or row.conversation_id is None:
            continue
        conversation = session.get(Conversation, row.conversation_id)
        if conversation is None:
            continue
        kind = {"sent": "reminder_sent", "skipped": "reminder_skipped"}.get(
            row.status, "reminder_failed"
        )
        key = f"{row.dedup_key}:outcome"
        line = NewEvent(conversation, kind, key, now, row.reason or kind, {"delivery_id": row.id})
        lines.append((row, conversation, line))
    appended = appended_events(session, [line for *_, line in lines])
    for row, conversation, line in lines:
        if row.status == "sent" and (conversation.id, line.dedup_key) in appended:
            emit_for_conversation(
                session,
                conversation,
                ev.EventType.REMINDER_SENT,
                reason=None,
                dedup_key=f"{row.dedup_key}:sent",
                now=now,
                delivery_id=row.id,
            )


def _tell_failed(session: Session, row: Delivery, now: datetime) -> None:
    """`delivery.failed`, or `delivery.ambiguous` (the request left, no answer came)."""
    contact = session.get_one(Contact, row.contact_id)
    emit(
        session,
        row.org_id,
        ev.EventType.DELIVERY_AMBIGUOUS
        if row.reason == "ambiguous"
        else ev.EventType.DELIVERY_FAILED,
        {
            "bot_id": row.bot_id,
            "contact": contact_ref(contact),
            "conversation_id": row.conversation_id,
            "episode_id": row.episode_id,
            "delivery": {
                "id": row.id,
                "purpose": row.purpose,
                "attempts": row.attempts,
                "error": row.error,
            },
            "reason": row.reason,
            "occurred_at": iso(now),
        },
        dedup_key=f"delivery:{row.id}:failed",
        ordering_key=f"conversation:{row.conversation_id}"
        if row.conversation_id
        else f"contact:{row.contact_id}",
        now=now,
    )


def finish(
    row: Delivery,
    status: str,
    now: datetime,
    *,
    reason: str | None = None,
    error: str | None = None,
) -> None:
    row.status, row.reason, row.error, row.finished_at = status, reason, error, now


def record(
    session: Session,
    row: Delivery,
    message: OutboundMessage,
    outcome: SendOutcome,
    now: datetime,
    clock: Clock | None,
) -> Retry | list[str] | None:
    """Write the outcome; return when to try again, or the timer keys to cancel (a blocked
    contact stops everything)."""
    if isinstance(outcome, Sent):
        finish(row, "sent", now)
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
        finish(row, "skipped", now, reason=outcome.reason)
    elif isinstance(outcome, Blocked):
        finish(row, "failed", now, reason="blocked", error=outcome.detail[:500])
        return mark_blocked(session, session.get_one(Contact, row.contact_id), now)
    elif isinstance(outcome, Failed) and outcome.retryable:
        return _again(row, outcome, now, clock)
    elif isinstance(outcome, Failed) and outcome.reason == "ambiguous":
        if isinstance(dl.ambiguous_outcome(row.retry_ambiguous, row.ambiguous_at), dl.Reclaim):
            row.ambiguous_at = now  # at least once: the one more try it asked for
            return _again(row, outcome, now, clock)
        finish(row, "failed", now, reason="ambiguous", error=outcome.detail[:500])
    elif isinstance(outcome, Failed):
        finish(row, "failed", now, reason=outcome.reason, error=outcome.detail[:500])
    return None


def _again(row: Delivery, outcome: Failed, now: datetime, clock: Clock | None) -> Retry | None:
    """Nothing reached the user (or, at least once, maybe nothing did): the work runs again
    when it may, unless that is past the message's validity."""
    retry = retry_at(clock, now, outcome, row.attempts)
    if not dl.still_valid(row.valid_until, retry.at):
        finish(row, "skipped", now, reason="expired", error=outcome.detail[:500])
        return None
    row.status, row.reason, row.error = "scheduled", outcome.reason, outcome.detail[:500]
    row.requested_at = None
    return retry


def load_for_log(session: Session, rows: Sequence[Delivery]) -> list[object]:
    """What `log_outcome` reads of the rows (their conversations and contacts), in two
    statements; returned to be held, as `load_for_claim`'s."""
    conversations = {r.conversation_id for r in rows if r.conversation_id is not None}
    if not conversations:
        return []
    held: list[object] = list(
        session.scalars(select(Conversation).where(among(session, Conversation.id, conversations)))
    )
    contacts = {c.contact_id for c in held if isinstance(c, Conversation)}
    held += session.scalars(select(Contact).where(among(session, Contact.id, contacts))).all()
    return held


def load_for_claim(session: Session, rows: list[Delivery]) -> list[object]:
    """What deciding the rows reads, in a few statements; returned to be held (the session's
    identity map holds its objects weakly), so `session.get` answers from memory."""
    proactive = {r.contact_id for r in rows if r.proactive_group is not None}
    plain = {r.contact_id for r in rows} - proactive
    held: list[object] = []
    if proactive:
        held += session.scalars(
            select(Contact)
            .where(among(session, Contact.id, proactive))
            .order_by(Contact.id)
            .with_for_update()
        ).all()
    if plain:
        held += session.scalars(select(Contact).where(among(session, Contact.id, plain))).all()
    conversations = {r.conversation_id for r in rows if r.conversation_id is not None}
    if conversations:
        held += session.scalars(
            select(Conversation).where(among(session, Conversation.id, conversations))
        ).all()
    episodes = {r.episode_id for r in rows if r.episode_id is not None}
    if episodes:
        held += session.scalars(select(Episode).where(among(session, Episode.id, episodes))).all()
    # Every row's bot: its channel labels the metrics; a proactive one's voice is decided.
    bots = session.scalars(select(Bot).where(Bot.id.in_({r.bot_id for r in rows}))).all()
    held += bots
    if proactive:
        held += session.scalars(
            select(Organization).where(Organization.id.in_({b.org_id for b in bots}))
        ).all()
    return held
