"""The human-agent queue: conversations handed off, taken, answered and closed by people."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from reengage.adapters.db.models import Contact, Conversation
from reengage.delivery.outbox import DeliveryRequest, delivery_timer, enqueue
from reengage.domain.activity import ActivityEvent, ConversationStatus, EventType
from reengage.domain.outbound import MessageKind, OutboundMessage
from reengage.i18n import N_
from reengage.runtime import Runtime
from reengage.services.errors import InvalidInput, NotFound
from reengage.services.tenancy import scoped, scoped_columns


def load(session: Session, org_id: int, conversation_id: int) -> tuple[Conversation, str]:
    row = session.execute(
        scoped_columns(Conversation, org_id, Conversation, Contact.external_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.id == conversation_id)
    ).first()
    if row is None:
        raise NotFound(
            N_("conversation {conversation_id} not found"),
            "conversation_id",
            conversation_id=conversation_id,
        )
    return row[0], row[1]


def waiting(session: Session, org_id: int, queue: str) -> list[Conversation]:
    """Conversations in a queue, oldest handoff first."""
    return list(
        session.scalars(
            scoped(
                Conversation,
                org_id,
                Conversation.status == "handoff",
                Conversation.handoff_queue == queue,
            ).order_by(Conversation.last_activity_at)
        )
    )


def take(runtime: Runtime, org_id: int, conversation_id: int, agent: str) -> None:
    with runtime.sessions.begin() as session:
        conv, _ = load(session, org_id, conversation_id)
        if conv.status != ConversationStatus.HANDOFF.value:
            raise InvalidInput(N_("only conversations in handoff can be taken"), "conversation_id")
        if conv.agent and conv.agent != agent:
            raise InvalidInput(N_("already taken by {agent}"), "agent", agent=conv.agent)
        conv.agent = agent


def reply(
    runtime: Runtime, org_id: int, conversation_id: int, agent: str, text: str, now: datetime
) -> int:
    """An agent's message: sent through the delivery record, recorded as agent activity."""
    with runtime.sessions.begin() as session:
        conv, user_id = load(session, org_id, conversation_id)
        if conv.status != ConversationStatus.HANDOFF.value:
            raise InvalidInput(N_("the conversation is not with an agent"), "conversation_id")
        conv.agent = conv.agent or agent
        key = f"agent:{conv.id}:{conv.activity_seq}:{now.timestamp()}"
        request = DeliveryRequest(
            org_id,
            conv.bot_id,
            conv.contact_id,
            key,
            "agent",
            OutboundMessage(MessageKind.TEXT, text),
            conv.id,
        )
        delivery_id = enqueue(session, request, now)
        bot_id = conv.bot_id
    runtime.timers.schedule([delivery_timer(delivery_id, now)])
    runtime.record(
        org_id, [ActivityEvent(f"{key}:activity", EventType.AGENT_MESSAGE, bot_id, user_id, now)]
    )
    return delivery_id


def close(runtime: Runtime, org_id: int, conversation_id: int, now: datetime) -> None:
    """Close a conversation as activity; the transaction that writes the close to the
    database also records `conversation.agent_closed` (see `events.outbox.emit_agent_closed`)."""
    with runtime.sessions() as session:
        conv, user_id = load(session, org_id, conversation_id)
        if conv.status == ConversationStatus.CLOSED.value:
            return
        bot_id, seq = conv.bot_id, conv.activity_seq
    runtime.record(
        org_id,
        [
            ActivityEvent(
                f"close:{conversation_id}:{seq}",
                EventType.CONVERSATION_STATUS,
                bot_id,
                user_id,
                now,
                ConversationStatus.CLOSED,
            )
        ],
    )
