"""Flows, inactivity policies at each level, and a bot's entry flow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from reengage.adapters.db.models import FlowRow
from reengage.domain import policy as pol
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import (
    ErrorOut,
    FlowKey,
    Id,
    JsonObject,
    NodeId,
)
from reengage.services import flows, policies
from reengage.services.errors import InvalidInput
from reengage.services.tenancy import get_bot

flows_router = APIRouter(
    tags=["flows and policies"],
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


class PolicyOut(BaseModel):
    scope: str
    level: str
    settings: dict[str, Any]
    warnings: list[str] = []


class EntryFlowIn(BaseModel):
    entry_flow: FlowKey | None = Field(description="Flow started when a new conversation opens")


def _flow_out(row: FlowRow) -> FlowOut:
    return FlowOut(key=row.key, definition=row.definition, updated_at=row.updated_at)


@flows_router.put("/v1/bots/{bot_id}/flows/{key}", response_model=FlowOut)
def put_flow(runtime: RuntimeDep, org_id: OrgId, bot_id: Id, key: FlowKey, body: FlowIn) -> FlowOut:
    """Create or replace a flow. Unknown node ids, unreachable nodes, loops without a question
    and missing targets are refused with the node named (`nodes.<id>`)."""
    definition = body.model_dump(exclude_none=True)
    with runtime.sessions.begin() as session:
        return _flow_out(
            flows.put_flow(session, org_id, bot_id, key, definition, runtime.clock.now())
        )


@flows_router.get("/v1/bots/{bot_id}/flows", response_model=list[FlowOut])
def list_flows(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> list[FlowOut]:
    """The bot's flows."""
    with runtime.sessions() as session:
        get_bot(session, org_id, bot_id)
        rows = session.scalars(
            select(FlowRow).where(FlowRow.bot_id == bot_id).order_by(FlowRow.key)
        )
        return [_flow_out(r) for r in rows]


@flows_router.get("/v1/bots/{bot_id}/flows/{key}", response_model=FlowOut)
def get_flow(runtime: RuntimeDep, org_id: OrgId, bot_id: Id, key: FlowKey) -> FlowOut:
    """One flow."""
    with runtime.sessions() as session:
        return _flow_out(flows.get_flow(session, org_id, bot_id, key))


@flows_router.put("/v1/bots/{bot_id}/entry-flow", response_model=EntryFlowIn)
def set_entry_flow(
    runtime: RuntimeDep, org_id: OrgId, bot_id: Id, body: EntryFlowIn
) -> EntryFlowIn:
    """The flow a new conversation of this bot starts in (null: none)."""
    with runtime.sessions.begin() as session:
        bot = get_bot(session, org_id, bot_id)
        if body.entry_flow is not None:
            try:
                flows.get_flow(session, org_id, bot_id, body.entry_flow)
            except Exception as exc:
                raise InvalidInput(
                    f"flow {body.entry_flow!r} does not exist", "entry_flow"
                ) from exc
        bot.entry_flow = body.entry_flow
    return body


def _put(
    runtime: RuntimeDep, org_id: int, scope: policies.Scope, settings: dict[str, Any]
) -> PolicyOut:
    with runtime.sessions.begin() as session:
        layer, warnings = policies.put_policy(session, org_id, scope, settings, runtime.clock.now())
    return PolicyOut(
        scope=scope.key,
        level=scope.level.value,
        settings=pol.layer_to_json(layer),
        warnings=warnings,
    )


def _get(runtime: RuntimeDep, org_id: int, scope: policies.Scope) -> PolicyOut:
    with runtime.sessions() as session:
        layer = policies.get_policy(session, org_id, scope)
    return PolicyOut(scope=scope.key, level=scope.level.value, settings=pol.layer_to_json(layer))


def _delete(runtime: RuntimeDep, org_id: int, scope: policies.Scope) -> dict[str, str]:
    with runtime.sessions.begin() as session:
        policies.delete_policy(session, org_id, scope)
    return {"deleted": scope.key}


ORG = policies.Scope(pol.Level.ORGANIZATION)
POLICY_DOC = (
    " Fields: enabled, timeout (1m..30d, e.g. `30m`), reminders "
    "[{after, text | template}], action (close | handoff | fallback_flow | none), "
    "queue, fallback_flow, final_text, final_template, applies_to (question, "
    "bot_wait, handoff), skip_if_waiting_for_agent. Unset fields come from the next "
    "level: node > flow > bot > organization > shipped default."
)


@flows_router.put(
    "/v1/policies/organization",
    response_model=PolicyOut,
    description="The organization's default inactivity policy." + POLICY_DOC,
)
def put_org_policy(runtime: RuntimeDep, org_id: OrgId, body: JsonObject) -> PolicyOut:
    return _put(runtime, org_id, ORG, body)


@flows_router.get("/v1/policies/organization", response_model=PolicyOut)
def get_org_policy(runtime: RuntimeDep, org_id: OrgId) -> PolicyOut:
    """The organization's default inactivity policy."""
    return _get(runtime, org_id, ORG)


@flows_router.delete("/v1/policies/organization")
def delete_org_policy(runtime: RuntimeDep, org_id: OrgId) -> dict[str, str]:
    """Remove the organization's default (the shipped defaults apply again)."""
    return _delete(runtime, org_id, ORG)


@flows_router.put(
    "/v1/bots/{bot_id}/policy",
    response_model=PolicyOut,
    description="The bot's (channel's) inactivity policy." + POLICY_DOC,
)
def put_bot_policy(runtime: RuntimeDep, org_id: OrgId, bot_id: Id, body: JsonObject) -> PolicyOut:
    return _put(runtime, org_id, policies.Scope(pol.Level.BOT, bot_id), body)


@flows_router.get("/v1/bots/{bot_id}/policy", response_model=PolicyOut)
def get_bot_policy(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> PolicyOut:
    """The bot's inactivity policy."""
    return _get(runtime, org_id, policies.Scope(pol.Level.BOT, bot_id))


@flows_router.delete("/v1/bots/{bot_id}/policy")
def delete_bot_policy(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> dict[str, str]:
    """Remove the bot's policy."""
    return _delete(runtime, org_id, policies.Scope(pol.Level.BOT, bot_id))


@flows_router.put(
    "/v1/bots/{bot_id}/flows/{key}/policy",
    response_model=PolicyOut,
    description="A flow's inactivity policy." + POLICY_DOC,
)
def put_flow_policy(
    runtime: RuntimeDep, org_id: OrgId, bot_id: Id, key: FlowKey, body: JsonObject
) -> PolicyOut:
    return _put(runtime, org_id, policies.Scope(pol.Level.FLOW, bot_id, key), body)


@flows_router.get("/v1/bots/{bot_id}/flows/{key}/policy", response_model=PolicyOut)
def get_flow_policy(runtime: RuntimeDep, org_id: OrgId, bot_id: Id, key: FlowKey) -> PolicyOut:
    """A flow's inactivity policy."""
    return _get(runtime, org_id, policies.Scope(pol.Level.FLOW, bot_id, key))


@flows_router.delete("/v1/bots/{bot_id}/flows/{key}/policy")
def delete_flow_policy(
    runtime: RuntimeDep, org_id: OrgId, bot_id: Id, key: FlowKey
) -> dict[str, str]:
    """Remove a flow's policy."""
    return _delete(runtime, org_id, policies.Scope(pol.Level.FLOW, bot_id, key))


@flows_router.put(
    "/v1/bots/{bot_id}/flows/{key}/nodes/{node}/policy",
    response_model=PolicyOut,
    description="A question node's inactivity policy." + POLICY_DOC,
)
def put_node_policy(
    runtime: RuntimeDep, org_id: OrgId, bot_id: Id, key: FlowKey, node: NodeId, body: JsonObject
) -> PolicyOut:
    return _put(runtime, org_id, policies.Scope(pol.Level.NODE, bot_id, key, node), body)


@flows_router.get("/v1/bots/{bot_id}/flows/{key}/nodes/{node}/policy", response_model=PolicyOut)
def get_node_policy(
    runtime: RuntimeDep, org_id: OrgId, bot_id: Id, key: FlowKey, node: NodeId
) -> PolicyOut:
    """A question node's inactivity policy."""
    return _get(runtime, org_id, policies.Scope(pol.Level.NODE, bot_id, key, node))


@flows_router.delete("/v1/bots/{bot_id}/flows/{key}/nodes/{node}/policy")
def delete_node_policy(
    runtime: RuntimeDep, org_id: OrgId, bot_id: Id, key: FlowKey, node: NodeId
) -> dict[str, str]:
    """Remove a node's policy."""
    return _delete(runtime, org_id, policies.Scope(pol.Level.NODE, bot_id, key, node))
