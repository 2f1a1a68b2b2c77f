"""Flows: store and validate definitions; move conversations through them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import Contact, Conversation, FlowRow
from reengage.delivery.outbox import DeliveryRequest, delivery_timer, enqueue
from reengage.domain import event as ev
from reengage.domain import flow as fl
from reengage.domain.activity import ActivityEvent, ConversationStatus, EventType
from reengage.domain.outbound import MessageKind, OutboundMessage
from reengage.domain.timer import Timer
from reengage.events.outbox import emit_for_conversation
from reengage.i18n import N_
from reengage.ports import ActivityStore, TimerStore
from reengage.services.errors import InvalidInput, NotFound, parsing
from reengage.services.event_log import append_event
from reengage.services.record_activity import Record
from reengage.services.tenancy import get_bot, owned, scoped, scoped_columns
from reengage.services.wake import refresh_wake

# A flow's answer that could not get through for this long is no longer worth sending.
REPLY_VALID = timedelta(hours=1)
# A flow step that ends the bot's part: what it tells events out, and the status it gives.
_TOLD = {
    "handoff": (ev.EventType.HANDED_OFF, ConversationStatus.HANDOFF.value),
    "closed": (ev.EventType.CLOSED, ConversationStatus.CLOSED.value),
}


def put_flow(
    session: Session, org_id: int, bot_id: int, key: str, definition: dict[str, Any], now: datetime
) -> FlowRow:
    """Validate and store a flow; errors name the node."""
    get_bot(session, org_id, bot_id)
    known = set(
        session.scalars(
            scoped_columns(FlowRow, org_id, FlowRow.key).where(FlowRow.bot_id == bot_id)
        )
    )
    with parsing(N_("the flow is malformed: {problem}")):
        try:
            flow = fl.parse_flow(key, definition)
            fl.validate_flow(flow, known - {key})
        except fl.FlowError as exc:
            field = f"nodes.{exc.node}" if exc.node else "definition"
            raise InvalidInput(exc.message, field) from exc
    row = session.scalar(scoped(FlowRow, org_id, FlowRow.bot_id == bot_id, FlowRow.key == key))
    if row is None:
        row = FlowRow(org_id=org_id, bot_id=bot_id, key=key, created_at=now, updated_at=now)
        session.add(row)
    row.definition, row.updated_at = dict(definition), now
    session.flush()
    refresh_wake(session, org_id)
    return row


def get_flow(session: Session, org_id: int, bot_id: int, key: str) -> FlowRow:
    row = session.scalar(scoped(FlowRow, org_id, FlowRow.bot_id == bot_id, FlowRow.key == key))
    if row is None:
        raise NotFound(N_("flow {key!r} not found"), "flow", key=key)
    return row


def load_flows(session: Session, org_id: int, bot_id: int) -> dict[str, fl.Flow]:
    rows = session.scalars(scoped(FlowRow, org_id, FlowRow.bot_id == bot_id))
    return {r.key: fl.parse_flow(r.key, r.definition) for r in rows}


@dataclass(frozen=True, slots=True)
class FlowDeps:
    sessions: sessionmaker[Session]
    activity: ActivityStore
    timers: TimerStore
    record: Record
    clock_now: Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class FlowMove:
    """What one flow step did: the delivery timers to publish and the activity to record once
    its transaction committed (the bot spoke; the conversation was handed off or closed)."""

    step: fl.Step
    timers: list[Timer]
    events: list[ActivityEvent]
    applied: bool = True  # False: this very input was applied before (a retry)


def _move(
    session: Session, conv: Conversation, step: fl.Step, now: datetime, key: str, proactive: bool
) -> FlowMove:
    timers = _apply(session, conv, step, now, key, proactive)
    if timers is None:
        return FlowMove(step, [], [], applied=False)
    return FlowMove(step, timers, _events(conv.bot_id, _user_of(session, conv), step, key, now))


def _apply(
    session: Session,
    conv: Conversation,
    step: fl.Step,
    now: datetime,
    outcome_key: str,
    proactive: bool,
) -> list[Timer] | None:
    """Store the new position and enqueue the step's messages; return their timers.
    None when this very input was already applied (a retry)."""
    position = step.position
    if not append_event(
        session,
        conv,
        kind=f"flow_{step.outcome}",
        dedup_key=f"flow:{outcome_key}",
        now=now,
        detail={"flow": position.flow, "node": position.node},
    ):
        return None
    conv.active_flow, conv.active_node = position.flow, position.node
    conv.context_variables = dict(position.variables)
    if position.queue:
        conv.handoff_queue = position.queue
    told = _TOLD.get(step.outcome)
    if told is not None:  # the status itself follows as activity, after the commit
        event_type, status = told
        emit_for_conversation(
            session,
            conv,
            event_type,
            reason=f"flow_{step.outcome}",
            dedup_key=f"flow:{outcome_key}",
            now=now,
            status=status,
        )
    timers = []
    for i, text in enumerate(step.say):
        request = DeliveryRequest(
            conv.org_id,
            conv.bot_id,
            conv.contact_id,
            f"flow:{outcome_key}:{i}",
            "flow",
            OutboundMessage(MessageKind.TEXT, text),
            conv.id,
            proactive_group=f"flow:{outcome_key}" if proactive else None,
            valid_until=now + REPLY_VALID,
        )
        timers.append(delivery_timer(enqueue(session, request, now), now))
    return timers


def _events(
    bot_id: int, user_id: str, step: fl.Step, key: str, now: datetime
) -> list[ActivityEvent]:
    events = []
    if step.say:
        # The bot spoke: the user's silence starts now, at the new node.
        events.append(ActivityEvent(f"flow:{key}:out", EventType.BOT_MESSAGE, bot_id, user_id, now))
    status = {"handoff": ConversationStatus.HANDOFF, "closed": ConversationStatus.CLOSED}.get(
        step.outcome
    )
    if status is not None:
        events.append(
            ActivityEvent(
                f"flow:{key}:status", EventType.CONVERSATION_STATUS, bot_id, user_id, now, status
            )
        )
    return events


def run_flow(
    session: Session,
    conv: Conversation,
    flow_key: str,
    now: datetime,
    reason: str = "start",
    *,
    proactive: bool = False,
) -> FlowMove:
    """Run a flow from its start node in a conversation the caller holds locked (entry,
    fallback, or by API). A `proactive` start (a timeout's fallback) speaks first: its
    messages obey opt-outs and the minimum gap."""
    flows = load_flows(session, conv.org_id, conv.bot_id)
    if flow_key not in flows:
        raise NotFound(N_("flow {flow_key!r} not found"), "flow", flow_key=flow_key)
    step = fl.run(flows, flow_key, None, conv.context_variables or {})
    return _move(session, conv, step, now, f"{conv.id}:{reason}:{conv.activity_seq}", proactive)


def answer_text(
    session: Session, conv: Conversation, text: str | None, now: datetime, input_key: str
) -> FlowMove | None:
    """The user wrote (already recorded as activity): answer the question they are at, or
    start the bot's entry flow in a conversation that has none. `input_key` names the input,
    so a retry applies nothing twice."""
    if conv.status != ConversationStatus.BOT.value:
        return None  # a human has it, or it is over
    flows = load_flows(session, conv.org_id, conv.bot_id)
    bot = get_bot(session, conv.org_id, conv.bot_id)
    if conv.active_flow is None or conv.active_flow not in flows:
        if not bot.entry_flow or bot.entry_flow not in flows:
            return None
        step = fl.run(flows, bot.entry_flow, None, conv.context_variables or {})
    elif text is None:
        return None  # a photo without a caption answers no question
    else:
        position = fl.Position(
            conv.active_flow,
            conv.active_node,
            conv.status,
            conv.handoff_queue,
            conv.context_variables or {},
        )
        step = fl.answer(flows, position, text)
    return _move(session, conv, step, now, f"{conv.id}:in:{input_key}", False)


def start_flow(
    deps: FlowDeps,
    org_id: int,
    conversation_id: int,
    flow_key: str,
    now: datetime,
    reason: str = "start",
) -> fl.Step:
    """Run a flow from its start node for a conversation, now (the API's "start a flow")."""
    with deps.sessions.begin() as session:
        conv = owned(session, Conversation, org_id, conversation_id, for_update=True)
        move = run_flow(session, conv, flow_key, now, reason)
    deps.timers.schedule(move.timers)
    if move.events:
        deps.record(org_id, move.events)
    return move.step


def _user_of(session: Session, conv: Conversation) -> str:
    return owned(session, Contact, conv.org_id, conv.contact_id).external_id
