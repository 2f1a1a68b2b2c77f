"""Flows (message, question, handoff, close, goto_flow nodes) and a bot's entry flow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from reengage.adapters.db.models import FlowRow
from reengage.entrypoints.api.deps import Actor, OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import (
    ErrorOut,
    FlowKey,
    Id,
    JsonObject,
    NodeId,
)
from reengage.i18n import N_
from reengage.services import flows
from reengage.services.audit_log import record_change
from reengage.services.errors import InvalidInput
from reengage.services.tenancy import get_bot, scoped

flows_router = APIRouter(
    tags=["flows"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


class FlowIn(BaseModel):
    start: NodeId | None = Field(default=None, description="Start node id (default: the first)")
    nodes: list[JsonObject] = Field(
        description="message, question, handoff, close, goto_flow nodes"
    )


class FlowOut(BaseModel):
    key: FlowKey
    definition: dict[str, Any]
    updated_at: datetime


class EntryFlowIn(BaseModel):
    entry_flow: FlowKey | None = Field(description="Flow started when a new conversation opens")


def _flow_out(row: FlowRow) -> FlowOut:
    return FlowOut(key=row.key, definition=row.definition, updated_at=row.updated_at)


@flows_router.put("/v1/bots/{bot_id}/flows/{key}", response_model=FlowOut)
def put_flow(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, key: FlowKey, body: FlowIn
) -> FlowOut:
    """Create or replace a flow. Unknown node ids, unreachable nodes, loops without a question
    and missing targets are refused with the node named (`nodes.<id>`)."""
    definition = body.model_dump(exclude_none=True)
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        old = session.scalar(scoped(FlowRow, org_id, FlowRow.bot_id == bot_id, FlowRow.key == key))
        before = dict(old.definition) if old is not None else None
        row = flows.put_flow(session, org_id, bot_id, key, definition, now)
        record_change(
            session,
            org_id,
            actor,
            "flow.put",
            f"bot {bot_id} flow {key}",
            now,
            before=before,
            after=definition,
        )
        return _flow_out(row)


@flows_router.get("/v1/bots/{bot_id}/flows", response_model=list[FlowOut])
def list_flows(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> list[FlowOut]:
    """The bot's flows."""
    with runtime.sessions() as session:
        get_bot(session, org_id, bot_id)
        rows = session.scalars(
            scoped(FlowRow, org_id, FlowRow.bot_id == bot_id).order_by(FlowRow.key)
        )
        return [_flow_out(r) for r in rows]


@flows_router.get("/v1/bots/{bot_id}/flows/{key}", response_model=FlowOut)
def get_flow(runtime: RuntimeDep, org_id: OrgId, bot_id: Id, key: FlowKey) -> FlowOut:
    """One flow."""
    with runtime.sessions() as session:
        return _flow_out(flows.get_flow(session, org_id, bot_id, key))


@flows_router.put("/v1/bots/{bot_id}/entry-flow", response_model=EntryFlowIn)
def set_entry_flow(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, body: EntryFlowIn
) -> EntryFlowIn:
    """The flow a new conversation of this bot starts in (null: none)."""
    with runtime.sessions.begin() as session:
        bot = get_bot(session, org_id, bot_id)
        if body.entry_flow is not None:
            try:
                flows.get_flow(session, org_id, bot_id, body.entry_flow)
            except Exception as exc:
                raise InvalidInput(
                    N_("flow {entry_flow!r} does not exist"),
                    "entry_flow",
                    entry_flow=body.entry_flow,
                ) from exc
        record_change(
            session,
            org_id,
            actor,
            "bot.entry_flow",
            f"bot {bot_id}",
            runtime.clock.now(),
            before={"entry_flow": bot.entry_flow},
            after={"entry_flow": body.entry_flow},
        )
        bot.entry_flow = body.entry_flow
    return body
