"""Inactivity policies at their four levels: organization, bot (channel), flow and question
node. Each level sets some fields; the most specific wins, field by field."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from reengage.domain import policy as pol
from reengage.entrypoints.api.deps import Actor, OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, FlowKey, Id, JsonObject, NodeId
from reengage.services import policies
from reengage.services.audit_log import record_change

policies_router = APIRouter(
    tags=["policies"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


class PolicyOut(BaseModel):
    scope: str
    level: str
    settings: dict[str, Any]
    warnings: list[str] = []


def _put(
    runtime: RuntimeDep, org_id: int, actor: str, scope: policies.Scope, settings: dict[str, Any]
) -> PolicyOut:
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        before = policies.stored_settings(session, org_id, scope)
        layer, warnings = policies.put_policy(session, org_id, scope, settings, now)
        after = policies.stored_settings(session, org_id, scope)
        record_change(
            session, org_id, actor, "policy.put", scope.key, now, before=before, after=after
        )
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


def _delete(runtime: RuntimeDep, org_id: int, actor: str, scope: policies.Scope) -> dict[str, str]:
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        before = policies.stored_settings(session, org_id, scope)
        policies.delete_policy(session, org_id, scope)
        record_change(session, org_id, actor, "policy.delete", scope.key, now, before=before)
    return {"deleted": scope.key}


ORG = policies.Scope(pol.Level.ORGANIZATION)
POLICY_DOC = (
    " Fields: enabled, timeout (1m..30d, e.g. `30m`), reminders "
    "[{after, text | template}], action (close | handoff | fallback_flow | none), "
    "queue, fallback_flow, final_text, final_template, applies_to (question, "
    "bot_wait, handoff), skip_if_waiting_for_agent. Unset fields come from the next "
    "level: node > flow > bot > organization > shipped default."
)


@policies_router.put(
    "/v1/policies/organization",
    response_model=PolicyOut,
    description="The organization's default inactivity policy." + POLICY_DOC,
)
def put_org_policy(runtime: RuntimeDep, org_id: OrgId, actor: Actor, body: JsonObject) -> PolicyOut:
    return _put(runtime, org_id, actor, ORG, body)


@policies_router.get("/v1/policies/organization", response_model=PolicyOut)
def get_org_policy(runtime: RuntimeDep, org_id: OrgId) -> PolicyOut:
    """The organization's default inactivity policy."""
    return _get(runtime, org_id, ORG)


@policies_router.delete("/v1/policies/organization")
def delete_org_policy(runtime: RuntimeDep, org_id: OrgId, actor: Actor) -> dict[str, str]:
    """Remove the organization's default (the shipped defaults apply again)."""
    return _delete(runtime, org_id, actor, ORG)


@policies_router.put(
    "/v1/bots/{bot_id}/policy",
    response_model=PolicyOut,
    description="The bot's (channel's) inactivity policy." + POLICY_DOC,
)
def put_bot_policy(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, body: JsonObject
) -> PolicyOut:
    return _put(runtime, org_id, actor, policies.Scope(pol.Level.BOT, bot_id), body)


@policies_router.get("/v1/bots/{bot_id}/policy", response_model=PolicyOut)
def get_bot_policy(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> PolicyOut:
    """The bot's inactivity policy."""
    return _get(runtime, org_id, policies.Scope(pol.Level.BOT, bot_id))


@policies_router.delete("/v1/bots/{bot_id}/policy")
def delete_bot_policy(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id
) -> dict[str, str]:
    """Remove the bot's policy."""
    return _delete(runtime, org_id, actor, policies.Scope(pol.Level.BOT, bot_id))


@policies_router.put(
    "/v1/bots/{bot_id}/flows/{key}/policy",
    response_model=PolicyOut,
    description="A flow's inactivity policy." + POLICY_DOC,
)
def put_flow_policy(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, key: FlowKey, body: JsonObject
) -> PolicyOut:
    return _put(runtime, org_id, actor, policies.Scope(pol.Level.FLOW, bot_id, key), body)


@policies_router.get("/v1/bots/{bot_id}/flows/{key}/policy", response_model=PolicyOut)
def get_flow_policy(runtime: RuntimeDep, org_id: OrgId, bot_id: Id, key: FlowKey) -> PolicyOut:
    """A flow's inactivity policy."""
    return _get(runtime, org_id, policies.Scope(pol.Level.FLOW, bot_id, key))


@policies_router.delete("/v1/bots/{bot_id}/flows/{key}/policy")
def delete_flow_policy(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, key: FlowKey
) -> dict[str, str]:
    """Remove a flow's policy."""
    return _delete(runtime, org_id, actor, policies.Scope(pol.Level.FLOW, bot_id, key))


@policies_router.put(
    "/v1/bots/{bot_id}/flows/{key}/nodes/{node}/policy",
    response_model=PolicyOut,
    description="A question node's inactivity policy." + POLICY_DOC,
)
def put_node_policy(
    runtime: RuntimeDep,
    org_id: OrgId,
    actor: Actor,
    bot_id: Id,
    key: FlowKey,
    node: NodeId,
    body: JsonObject,
) -> PolicyOut:
    return _put(runtime, org_id, actor, policies.Scope(pol.Level.NODE, bot_id, key, node), body)


@policies_router.get("/v1/bots/{bot_id}/flows/{key}/nodes/{node}/policy", response_model=PolicyOut)
def get_node_policy(
    runtime: RuntimeDep, org_id: OrgId, bot_id: Id, key: FlowKey, node: NodeId
) -> PolicyOut:
    """A question node's inactivity policy."""
    return _get(runtime, org_id, policies.Scope(pol.Level.NODE, bot_id, key, node))


@policies_router.delete("/v1/bots/{bot_id}/flows/{key}/nodes/{node}/policy")
def delete_node_policy(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, key: FlowKey, node: NodeId
) -> dict[str, str]:
    """Remove a node's policy."""
    return _delete(runtime, org_id, actor, policies.Scope(pol.Level.NODE, bot_id, key, node))
