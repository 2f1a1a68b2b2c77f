"""A conversation's timeout: the policy in force where the conversation stands (its levels
resolved), and its stages (reminders, then the final action), each run once per silence, in
the silence handler's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from reengage.adapters.db.models import Bot, Contact, Conversation, FlowRow, PolicyRow
from reengage.delivery.outbox import DeliveryRequest, delivery_timer, enqueue
from reengage.domain import policy as pol
from reengage.domain.activity import ConversationStatus
from reengage.domain.event import EventType
from reengage.domain.flow import NodeType
from reengage.domain.outbound import MessageKind, OutboundMessage, Template
from reengage.events.outbox import emit_for_conversation
from reengage.ports import ActivityStore
from reengage.services import flows
from reengage.services.config_cache import ConfigBatch
from reengage.services.event_log import append_event
from reengage.services.policies import Scope
from reengage.services.record_activity import Record, RecordActivity
from reengage.services.tenancy import scoped
from reengage.timers.handler import FollowUps

# What a final action tells the subscriptions of events out.
_TOLD = {
    pol.Action.CLOSE: EventType.CLOSED,
    pol.Action.HANDOFF: EventType.HANDED_OFF,
    pol.Action.FALLBACK_FLOW: EventType.FALLBACK_STARTED,
}
# A stage's message that could not get through for this long is no longer worth sending.
STALE_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class TimeoutDeps:
    activity: ActivityStore
    language: str
    record: Record
    # Policy levels and flow node types, read once per batch (and held under the
    # organization's configuration stamp).
    reads: ConfigBatch = field(default_factory=ConfigBatch)


@dataclass(frozen=True, slots=True)
class TimeoutState:
    wake: datetime | None = None  # when the next stage is due
    pending: bool = False  # stages are still to come in this silence
    ended_at: datetime | None = None  # when its final stage ran, if it did


def layers_for(
    session: Session, org_id: int, bot_id: int, flow: str | None, node: str | None
) -> list[tuple[pol.Level, pol.PolicyLayer]]:
    """The levels that apply at a position, most specific first."""
    scopes = [
        Scope(pol.Level.NODE, bot_id, flow, node),
        Scope(pol.Level.FLOW, bot_id, flow),
        Scope(pol.Level.BOT, bot_id),
        Scope(pol.Level.ORGANIZATION),
    ]
    if flow is None:
        scopes = scopes[2:]
    elif node is None:
        scopes = scopes[1:]
    rows = {
        r.scope: r
        for r in session.scalars(
            scoped(PolicyRow, org_id, PolicyRow.scope.in_([s.key for s in scopes]))
        )
    }
    return [(s.level, pol.parse_layer(rows[s.key].settings)) for s in scopes if s.key in rows]


def node_type(session: Session, conv: Conversation, reads: ConfigBatch | None = None) -> str | None:
    """The type of the node the conversation is at (None outside a flow)."""
    flow, node = conv.active_flow, conv.active_node
    if flow is None or node is None:
        return None
    reads = reads or ConfigBatch()
    key = ("node", conv.bot_id, flow, node)
    return reads.get(conv.org_id, key, lambda: _node_type(session, conv, flow, node))


def _node_type(session: Session, conv: Conversation, flow: str, node: str) -> str | None:
    row = session.scalar(
        scoped(FlowRow, conv.org_id, FlowRow.bot_id == conv.bot_id, FlowRow.key == flow)
    )
    for raw in row.definition.get("nodes", []) if row else []:
        if raw.get("id") == node:
            return str(raw.get("type"))
    return None


def situation_of(conv: Conversation, at_question: bool) -> pol.Situation:
    """Who the conversation is waiting on, from its status and who spoke last."""
    if conv.status == ConversationStatus.CLOSED.value:
        return pol.Situation.NONE
    contact_last = conv.last_message_from_contact_at
    if conv.status == ConversationStatus.HANDOFF.value:
        agent_last = conv.last_message_from_agent_at
        if agent_last is not None and (contact_last is None or agent_last >= contact_last):
            return pol.Situation.HANDOFF
        return pol.Situation.WAITING_FOR_AGENT
    bot_last = conv.last_message_at
    # Equal times: the bot answered within the same instant, so it spoke last.
    if bot_last is None or (contact_last is not None and contact_last > bot_last):
        return pol.Situation.NONE  # the user spoke last: the bot owes the answer
    return pol.Situation.QUESTION if at_question else pol.Situation.BOT_WAIT


def policy_for(
    session: Session, conv: Conversation, language: str = "pt-BR", reads: ConfigBatch | None = None
) -> tuple[pol.Policy, pol.Situation]:
    config = reads or ConfigBatch()

    def layers(flow: str | None, node: str | None) -> list[tuple[pol.Level, pol.PolicyLayer]]:
        return config.get(
            conv.org_id,
            ("layers", conv.bot_id, flow, node),
            lambda: layers_for(session, conv.org_id, conv.bot_id, flow, node),
        )

    if conv.status == ConversationStatus.HANDOFF.value:
        # With a human, the flow's position no longer speaks: bot and organization levels do.
        return pol.resolve(layers(None, None), False, language), situation_of(conv, False)
    at_question = node_type(session, conv, config) == NodeType.QUESTION.value
    found = layers(conv.active_flow, conv.active_node if at_question else None)
    return pol.resolve(found, at_question, language), situation_of(conv, at_question)


def run_timeout(
    session: Session,
    conv: Conversation,
    bot: Bot,
    now: datetime,
    deps: TimeoutDeps,
    follow: FollowUps,
) -> TimeoutState:
    """Run the stage that is due, once per silence; say what is still to come."""
    policy, situation = policy_for(session, conv, bot.language or deps.language, deps.reads)
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
        appended = append_event(
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
        told = _TOLD.get(action)
        if appended and told is not None:
            emit_for_conversation(
                self.session,
                conv,
                told,
                reason=reason,
                dedup_key=self.key,
                now=now,
                stage=self.stage.index,
            )

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
