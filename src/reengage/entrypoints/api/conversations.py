"""Conversations: state, clocks, pending timer and event log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from reengage.adapters.db.models import Contact, Conversation, ConversationEvent
from reengage.domain.activity import ConversationStatus
from reengage.domain.inactivity import inactivity_key
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import (
    ConversationEventOut,
    ConversationOut,
    ErrorOut,
    Id,
    TimerOut,
    UserId,
)
from reengage.ports import TimerStore
from reengage.services.agents import load
from reengage.services.tenancy import scoped, scoped_columns

conversations_router = APIRouter(
    prefix="/v1/conversations", tags=["conversations"], responses={401: {"model": ErrorOut}}
)


def _out(conv: Conversation, user_id: str, timers: TimerStore | None = None) -> ConversationOut:
    timer = timers.get(inactivity_key(conv.bot_id, user_id)) if timers else None
    return ConversationOut(
        id=conv.id,
        bot_id=conv.bot_id,
        user_id=user_id,
        status=ConversationStatus(conv.status),
        active_flow=conv.active_flow,
        active_node=conv.active_node,
        context_variables=conv.context_variables,
        activity_seq=conv.activity_seq,
        last_activity_at=conv.last_activity_at,
        last_message_at=conv.last_message_at,
        last_inbound_message_at=conv.last_inbound_message_at,
        last_message_from_contact_at=conv.last_message_from_contact_at,
        last_message_from_agent_at=conv.last_message_from_agent_at,
        window_expires_at=conv.window_expires_at,
        inactivity_due_at=conv.inactivity_due_at,
        opened_at=conv.opened_at,
        closed_at=conv.closed_at,
        pending_timer=TimerOut(key=timer.key, purpose=timer.purpose, due_at=timer.due_at)
        if timer
        else None,
    )


@conversations_router.get("", response_model=list[ConversationOut])
def list_conversations(
    runtime: RuntimeDep,
    org_id: OrgId,
    bot_id: Id | None = None,
    user_id: UserId | None = None,
    status: ConversationStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ConversationOut]:
    """Conversations of the organization, newest first, filtered by bot, user or status."""
    stmt = (
        scoped_columns(Conversation, org_id, Conversation, Contact.external_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .order_by(Conversation.id.desc())
        .limit(limit)
    )
    if bot_id is not None:
        stmt = stmt.where(Conversation.bot_id == bot_id)
    if user_id is not None:
        stmt = stmt.where(Contact.external_id == user_id)
    if status is not None:
        stmt = stmt.where(Conversation.status == status.value)
    with runtime.sessions() as session:
        return [_out(conv, uid) for conv, uid in session.execute(stmt)]


@conversations_router.get(
    "/{conversation_id}", response_model=ConversationOut, responses={404: {"model": ErrorOut}}
)
def get_conversation(runtime: RuntimeDep, org_id: OrgId, conversation_id: Id) -> ConversationOut:
    """A conversation's state, clocks and its pending inactivity timer."""
    with runtime.sessions() as session:
        conv, user_id = load(session, org_id, conversation_id)
    return _out(conv, user_id, runtime.timers)


@conversations_router.get(
    "/{conversation_id}/events",
    response_model=list[ConversationEventOut],
    responses={404: {"model": ErrorOut}},
)
def get_conversation_events(
    runtime: RuntimeDep, org_id: OrgId, conversation_id: Id
) -> list[ConversationEventOut]:
    """What reengage did in this conversation and why, oldest first."""
    with runtime.sessions() as session:
        load(session, org_id, conversation_id)
        rows = session.scalars(
            scoped(
                ConversationEvent, org_id, ConversationEvent.conversation_id == conversation_id
            ).order_by(ConversationEvent.id)
        )
        return [
            ConversationEventOut(
                id=r.id, kind=r.kind, reason=r.reason, detail=r.detail, created_at=r.created_at
            )
            for r in rows
        ]
