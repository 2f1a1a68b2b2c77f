"""A conversation's timeout: its policy's stages (reminders, then the final action), each run
once per silence, in the silence handler's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from reengage.adapters.db.models import Bot, Contact, Conversation
from reengage.delivery.outbox import DeliveryRequest, delivery_timer, enqueue
from reengage.domain import policy as pol
from reengage.domain.activity import ConversationStatus
from reengage.domain.outbound import MessageKind, OutboundMessage, Template
from reengage.ports import ActivityStore
from reengage.services import flows
from reengage.services.event_log import append_event
from reengage.services.policies import policy_for
from reengage.services.record_activity import Record, RecordActivity
from reengage.timers.handler import FollowUps

# A stage's message that could not get through for this long is no longer worth sending.
STALE_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class TimeoutDeps:
    activity: ActivityStore
    language: str
    record: Record


@dataclass(frozen=True, slots=True)
class TimeoutState:
    wake: datetime | None = None  # when the next stage is due
    pending: bool = False  # stages are still to come in this silence
    ended_at: datetime | None = None  # when its final stage ran, if it did


def run_timeout(
    session: Session,
    conv: Conversation,
    bot: Bot,
    now: datetime,
    deps: TimeoutDeps,
    follow: FollowUps,
) -> TimeoutState:
    """Run the stage that is due, once per silence; say what is still to come."""
    policy, situation = policy_for(session, conv, bot.language or deps.language)
    silent_since = conv.last_activity_at
    if silent_since is None:
        return TimeoutState()
    done = pol.stages_done(conv.timeout_stage, conv.timeout_seq, conv.activity_seq)
    decision = pol.decide_stage(policy, situation, silent_since, done, now)
    if isinstance(decision, pol.Wait):
        return TimeoutState(decision.until, pending=True)
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
        return TimeoutState(ended_at=ended)
    conv.timeout_seq, conv.timeout_stage = conv.activity_seq, decision.stage.index + 1
    stage = Stage(session, conv, policy, decision.stage, now, deps, follow)
    if decision.action is None:
        stage.remind()
    else:
        if not stage.claim_status(decision.action):
            conv.timeout_stage = done  # the user wrote meanwhile: nothing happens
            return TimeoutState()
        stage.finish(decision.action)
        return TimeoutState(ended_at=silent_since + decision.stage.after)
    nxt = pol.decide_stage(policy, situation, silent_since, decision.stage.index + 1, now)
    if isinstance(nxt, pol.Wait):
        return TimeoutState(nxt.until, pending=True)
    return TimeoutState()


@dataclass(slots=True)
class Stage:
    """One stage being run, with what it needs."""

    session: Session
    conv: Conversation
    policy: pol.Policy
    stage: pol.Stage
    now: datetime
    deps: TimeoutDeps
    follow: FollowUps

    @property
    def key(self) -> str:
        return f"timeout:{self.conv.id}:{self.conv.activity_seq}:{self.stage.index}"

    def remind(self) -> None:
        """A reminder; logged as sent (or skipped, and why) when its delivery has an outcome."""
        fallback = pol.DEFAULT_REMINDER.get(self.deps.language)
        self._send(_message(self.stage, fallback), "reminder")

    def claim_status(self, action: pol.Action) -> bool:
        """Close or hand off only if the user has not written since the timer was set: the
        hot store compares its version atomically (this transaction holds the row lock)."""
        status = {
            pol.Action.CLOSE: ConversationStatus.CLOSED,
            pol.Action.HANDOFF: ConversationStatus.HANDOFF,
        }.get(action)
        if status is None:
            return True
        conv = self.conv
        user = self.session.get_one(Contact, conv.contact_id).external_id
        return self.deps.activity.change_status(
            conv.bot_id, user, conv.activity_seq, status, self.now
        )

    def finish(self, action: pol.Action) -> None:
        """The final action and its message, decided against the version the timer was set
        for (the row lock holds off the user's next message), or not at all."""
        conv, now = self.conv, self.now
        reason = {
            pol.Action.CLOSE: "closed_by_timeout",
            pol.Action.HANDOFF: "handoff_by_timeout",
            pol.Action.FALLBACK_FLOW: "fallback_by_timeout",
            pol.Action.NONE: "timeout",
        }[action]
        self._send(_message(self.stage, None), "timeout")
        append_event(
            self.session,
            conv,
            kind=reason,
            reason=reason,
            dedup_key=self.key,
            now=now,
            detail={"stage": self.stage.index, "action": action.value},
        )
        if action is pol.Action.CLOSE:
            conv.status, conv.closed_at = ConversationStatus.CLOSED.value, now
        elif action is pol.Action.HANDOFF:
            conv.status, conv.handoff_queue = ConversationStatus.HANDOFF.value, self.policy.queue
        elif action is pol.Action.FALLBACK_FLOW and self.policy.fallback_flow:
            self._fallback(self.policy.fallback_flow)

    def _fallback(self, flow_key: str) -> None:
        """Jump to the fallback flow in this transaction; it speaks first, so an opted-out
        contact is not taken there at all."""
        session, conv = self.session, self.conv
        if session.get_one(Contact, conv.contact_id).opted_out_at is not None:
            append_event(
                session,
                conv,
                kind="fallback_skipped",
                reason="opted_out",
                dedup_key=f"fallback:{conv.activity_seq}:skip",
                now=self.now,
            )
            return
        move = flows.run_flow(session, conv, flow_key, self.now, "fallback", proactive=True)
        if move.applied:
            self.follow.timers += move.timers
            self.follow.effects.append(RecordActivity(self.deps.record, conv.org_id, move.events))

    def _send(self, message: OutboundMessage | None, purpose: str) -> None:
        if message is None:
            return
        conv = self.conv
        # A reminder is guarded: if the user writes before it goes out, it is skipped as
        # user_active. A final message goes with its action.
        request = DeliveryRequest(
            conv.org_id,
            conv.bot_id,
            conv.contact_id,
            self.key,
            purpose,
            message,
            conv.id,
            conv.activity_seq if purpose == "reminder" else None,
            proactive_group=self.key,
            valid_until=self.now + STALE_AFTER,
            retry_ambiguous=self.policy.on_ambiguous == "retry_once",
        )
        self.follow.timers.append(
            delivery_timer(enqueue(self.session, request, self.now), self.now)
        )


def _message(stage: pol.Stage, fallback: str | None) -> OutboundMessage | None:
    if stage.template:
        return OutboundMessage(MessageKind.TEMPLATE, template=Template(stage.template))
    text = stage.text or fallback
    return OutboundMessage(MessageKind.TEXT, text) if text else None
