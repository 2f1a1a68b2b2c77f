"""What happens when a subject has been quiet: the one timer per subject fires here.

Each feature looks at the silence and either acts (once per activity version: effects carry
dedup keys) or says when it next wants to look. The earliest of those becomes the follow-up
timer, under the same key and version: any new activity replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Bot, Contact, Conversation
from reengage.domain import inactivity
from reengage.domain import policy as pol
from reengage.domain.activity import ConversationStatus
from reengage.domain.outbound import MessageKind, OutboundMessage, Template
from reengage.domain.timer import Timer
from reengage.ports import ActivityStore
from reengage.services import flows, recovery_episode
from reengage.services.conversation_rows import clock_of, inactivity_threshold
from reengage.services.deliver import DeliveryRequest, delivery_timer, enqueue
from reengage.services.event_log import append_event
from reengage.services.flows import Record
from reengage.services.policies import policy_for

log = structlog.get_logger(__name__)

# A stage's message that could not get through for this long is no longer worth sending.
STALE_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SilenceDeps:
    activity: ActivityStore
    default_threshold: timedelta
    language: str = "pt-BR"
    # Records the activity a fallback flow produces, once the timeout's transaction committed.
    record: Record | None = None


def latest_conversation(session: Session, bot_id: int, user_id: str) -> Conversation | None:
    """The subject's newest conversation (open, or the one just closed), locked for this
    transaction."""
    return session.scalar(
        select(Conversation)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Contact.bot_id == bot_id, Contact.external_id == user_id)
        .order_by(Conversation.id.desc())
        .limit(1)
        .with_for_update()
    )


def open_conversation(session: Session, bot_id: int, user_id: str) -> Conversation | None:
    """The subject's open conversation, locked for this transaction."""
    conv = latest_conversation(session, bot_id, user_id)
    return conv if conv is not None and conv.status != ConversationStatus.CLOSED.value else None


def handle_silence(
    session: Session, timer: Timer, now: datetime, *, deps: SilenceDeps
) -> list[Timer]:
    """Run every feature that is due for this silence; return the follow-up timer.

    One voice: while a timeout's stages run or a human has the conversation, recovery waits;
    its threshold counts from the later of the last activity, the timeout's end and the
    conversation's close."""
    bot_id, user_id = int(timer.payload["bot_id"] or 0), str(timer.payload["user_id"])
    seq = int(timer.payload["seq"] or 0)
    hot = deps.activity.hot_seq(bot_id, user_id)
    if hot is not None and hot != seq:
        log.debug("silence.skipped", bot_id=bot_id, user_id=user_id, reason="version_mismatch")
        return []
    deps.activity.flush_subject(bot_id, user_id, now)
    conv = latest_conversation(session, bot_id, user_id)
    if conv is None or conv.activity_seq != seq or conv.last_activity_at is None:
        log.debug("silence.skipped", bot_id=bot_id, user_id=user_id, reason="version_mismatch")
        return []
    wakes: list[datetime | None] = []
    since, recovery_may_start = conv.last_activity_at, True
    if conv.status != ConversationStatus.CLOSED.value:
        bot = session.get_one(Bot, bot_id)
        wakes.append(_inactivity(session, conv, bot, now, deps))
        timeout = _timeout(session, conv, bot, now, deps)
        wakes.append(timeout.wake)
        if timeout.pending or conv.status == ConversationStatus.HANDOFF.value:
            recovery_may_start = False  # someone else speaks to this contact: recovery waits
        elif timeout.ended_at is not None:
            since = max(since, timeout.ended_at)
    if conv.status == ConversationStatus.CLOSED.value and conv.closed_at is not None:
        since = max(since, conv.closed_at)
    if recovery_may_start:
        wakes.append(recovery_episode.on_silence(session, conv, since, now))
    due = [w for w in wakes if w is not None]
    conv.inactivity_due_at = min(due) if due else None
    if not due:
        return []
    return [inactivity.inactivity_timer(bot_id, user_id, seq, min(due))]


def _inactivity(
    session: Session, conv: Conversation, bot: Bot, now: datetime, deps: SilenceDeps
) -> datetime | None:
    """The silence passed the bot's inactivity threshold: record it, once."""
    threshold = inactivity_threshold(bot, deps.default_threshold)
    decision = inactivity.decide_inactivity(clock_of(conv), conv.activity_seq, threshold, now)
    if isinstance(decision, inactivity.Skip):
        if decision.reason == "not_due" and threshold and conv.last_activity_at:
            return conv.last_activity_at + threshold
        return None
    if append_event(
        session,
        conv,
        kind="inactivity_detected",
        dedup_key=f"inactivity:{decision.seq}",
        now=now,
        detail={"since": decision.since.isoformat(), "seq": decision.seq},
    ):
        log.info("inactivity.detected", conversation_id=conv.id)
    return None


@dataclass(frozen=True, slots=True)
class TimeoutOutcome:
    wake: datetime | None = None  # when the next stage is due
    pending: bool = False  # stages are still to come in this silence
    ended_at: datetime | None = None  # when its final stage ran, if it did


def _timeout(
    session: Session, conv: Conversation, bot: Bot, now: datetime, deps: SilenceDeps
) -> TimeoutOutcome:
    """The conversation's inactivity policy: run the stage that is due, once per silence."""
    policy, situation = policy_for(session, conv, bot.language or deps.language)
    silent_since = conv.last_activity_at
    if silent_since is None:
        return TimeoutOutcome()
    done = conv.timeout_stage if conv.timeout_seq == conv.activity_seq else 0
    decision = pol.decide_stage(policy, situation, silent_since, done, now)
    if isinstance(decision, pol.Wait):
        return TimeoutOutcome(decision.until, pending=True)
    if isinstance(decision, pol.Skip):
        if decision.reason == "skipped_waiting_for_agent" and policy.enabled:
            append_event(
                session,
                conv,
                kind="timeout_skipped",
                reason=decision.reason,
                dedup_key=f"timeout:{conv.activity_seq}:skip",
                now=now,
            )
        ended = silent_since + policy.timeout if decision.reason == "completed" else None
        return TimeoutOutcome(ended_at=ended)
    conv.timeout_seq, conv.timeout_stage = conv.activity_seq, decision.stage.index + 1
    if decision.action is None:
        _reminder(session, conv, policy, decision.stage, now, deps.language)
    else:
        if not _claim_status(conv, decision.action, deps, now):
            conv.timeout_stage = done  # the user wrote meanwhile: nothing happens
            return TimeoutOutcome()
        _final(session, conv, policy, decision.stage, decision.action, now, deps)
        return TimeoutOutcome(ended_at=silent_since + decision.stage.after)
    nxt = pol.decide_stage(policy, situation, silent_since, decision.stage.index + 1, now)
    if isinstance(nxt, pol.Wait):
        return TimeoutOutcome(nxt.until, pending=True)
    return TimeoutOutcome()


def _message(stage: pol.Stage, fallback: str | None) -> OutboundMessage | None:
    if stage.template:
        return OutboundMessage(MessageKind.TEMPLATE, template=Template(stage.template))
    text = stage.text or fallback
    return OutboundMessage(MessageKind.TEXT, text) if text else None


def _send(
    session: Session,
    conv: Conversation,
    key: str,
    message: OutboundMessage | None,
    now: datetime,
    purpose: str,
    policy: pol.Policy,
) -> None:
    if message is None:
        return
    # A reminder is guarded: if the user writes before it goes out, it is skipped as
    # user_active. A final message goes with its action, decided against this version.
    request = DeliveryRequest(
        conv.org_id,
        conv.bot_id,
        conv.contact_id,
        key,
        purpose,
        message,
        conv.id,
        conv.activity_seq if purpose == "reminder" else None,
        proactive_group=key,
        valid_until=now + STALE_AFTER,
        retry_ambiguous=policy.on_ambiguous == "retry_once",
    )
    timer = delivery_timer(enqueue(session, request, now), now)
    session.info.setdefault("after_commit", []).append(lambda: [timer])


def _reminder(
    session: Session,
    conv: Conversation,
    policy: pol.Policy,
    stage: pol.Stage,
    now: datetime,
    language: str,
) -> None:
    key = f"timeout:{conv.id}:{conv.activity_seq}:{stage.index}"
    # Logged as sent (or skipped, and why) when its delivery has an outcome.
    text = _message(stage, pol.DEFAULT_REMINDER.get(language))
    _send(session, conv, key, text, now, "reminder", policy)


def _final(
    session: Session,
    conv: Conversation,
    policy: pol.Policy,
    stage: pol.Stage,
    action: pol.Action,
    now: datetime,
    deps: SilenceDeps,
) -> None:
    key = f"timeout:{conv.id}:{conv.activity_seq}:{stage.index}"
    reason = {
        pol.Action.CLOSE: "closed_by_timeout",
        pol.Action.HANDOFF: "handoff_by_timeout",
        pol.Action.FALLBACK_FLOW: "fallback_by_timeout",
        pol.Action.NONE: "timeout",
    }[action]
    # The row lock holds off the user's next message: the action and its message are decided
    # against the version the timer was set for, or not at all.
    _send(session, conv, key, _message(stage, None), now, "timeout", policy)
    append_event(
        session,
        conv,
        kind=reason,
        reason=reason,
        dedup_key=key,
        now=now,
        detail={"stage": stage.index, "action": action.value},
    )
    if action is pol.Action.CLOSE:
        conv.status, conv.closed_at = ConversationStatus.CLOSED.value, now
    elif action is pol.Action.HANDOFF:
        conv.status, conv.handoff_queue = ConversationStatus.HANDOFF.value, policy.queue
    elif action is pol.Action.FALLBACK_FLOW and policy.fallback_flow:
        _fallback(session, conv, policy.fallback_flow, now, deps)


def _fallback(
    session: Session, conv: Conversation, flow_key: str, now: datetime, deps: SilenceDeps
) -> None:
    """Jump to the fallback flow in this transaction; it speaks first, so an opted-out
    contact is not taken there at all."""
    contact = session.get_one(Contact, conv.contact_id)
    if contact.opted_out_at is not None:
        append_event(
            session,
            conv,
            kind="fallback_skipped",
            reason="opted_out",
            dedup_key=f"fallback:{conv.activity_seq}:skip",
            now=now,
        )
        return
    move = flows.run_flow(session, conv, flow_key, now, "fallback", proactive=True)
    record, org_id = deps.record, conv.org_id
    if record is None or not move.applied:
        return

    def after_commit() -> list[Timer]:
        if move.events:
            record(org_id, move.events)
        return move.timers

    session.info.setdefault("after_commit", []).append(after_commit)


def _claim_status(conv: Conversation, action: pol.Action, deps: SilenceDeps, now: datetime) -> bool:
    """Close or hand off only if the user has not written since the timer was set: the hot
    store compares its version atomically (the database row is locked by this handler)."""
    status = {
        pol.Action.CLOSE: ConversationStatus.CLOSED,
        pol.Action.HANDOFF: ConversationStatus.HANDOFF,
    }.get(action)
    if status is None:
        return True
    contact_bot, user = conv.bot_id, _user(conv)
    return deps.activity.change_status(contact_bot, user, conv.activity_seq, status, now)


def _user(conv: Conversation) -> str:
    from sqlalchemy.orm import object_session

    session = object_session(conv)
    assert session is not None
    return session.get_one(Contact, conv.contact_id).external_id
