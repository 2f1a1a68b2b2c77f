"""The human-agent queue, and what a conversation's inactivity policy will do next."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from reengage.domain import policy as pol
from reengage.domain.duration import format_duration
from reengage.domain.inactivity import inactivity_key
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, FlowKey, Id, QueueName, Text
from reengage.services import agents
from reengage.services.flows import start_flow
from reengage.services.tenancy import get_bot
from reengage.silence.timeout import policy_for

agents_router = APIRouter(
    tags=["conversations"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


class AgentIn(BaseModel):
    agent: Text = Field(min_length=1, max_length=128)


class ReplyIn(AgentIn):
    text: Text = Field(min_length=1, max_length=4096)


class FlowStartIn(BaseModel):
    flow: FlowKey


class QueueItem(BaseModel):
    conversation_id: int
    bot_id: int
    agent: str | None
    waiting_since: datetime | None


class InactivityOut(BaseModel):
    situation: str
    policy: dict[str, Any]
    sources: dict[str, str]
    stages: list[dict[str, Any]]
    stages_done: int
    next_stage: dict[str, Any] | None
    pending_timer_at: datetime | None


@agents_router.get("/v1/queues/{queue}/conversations", response_model=list[QueueItem])
def list_queue(runtime: RuntimeDep, org_id: OrgId, queue: QueueName) -> list[QueueItem]:
    """Conversations handed off to a human-agent queue, the longest-waiting first."""
    with runtime.sessions() as session:
        return [
            QueueItem(
                conversation_id=c.id,
                bot_id=c.bot_id,
                agent=c.agent,
                waiting_since=c.last_activity_at,
            )
            for c in agents.waiting(session, org_id, queue)
        ]


@agents_router.post("/v1/conversations/{conversation_id}/take")
def take(runtime: RuntimeDep, org_id: OrgId, conversation_id: Id, body: AgentIn) -> dict[str, str]:
    """An agent takes a conversation from its queue."""
    agents.take(runtime, org_id, conversation_id, body.agent)
    return {"agent": body.agent}


@agents_router.post("/v1/conversations/{conversation_id}/reply", status_code=202)
def reply(runtime: RuntimeDep, org_id: OrgId, conversation_id: Id, body: ReplyIn) -> dict[str, int]:
    """An agent's message to the customer (sent through the delivery record)."""
    delivery_id = agents.reply(
        runtime, org_id, conversation_id, body.agent, body.text, runtime.clock.now()
    )
    return {"delivery_id": delivery_id}


@agents_router.post("/v1/conversations/{conversation_id}/close")
def close(runtime: RuntimeDep, org_id: OrgId, conversation_id: Id) -> dict[str, str]:
    """Close the conversation (an agent's or an operator's decision)."""
    agents.close(runtime, org_id, conversation_id, runtime.clock.now())
    return {"status": "closed"}


@agents_router.post("/v1/conversations/{conversation_id}/flow")
def start(
    runtime: RuntimeDep, org_id: OrgId, conversation_id: Id, body: FlowStartIn
) -> dict[str, Any]:
    """Start a flow in the conversation, from its first node."""
    step = start_flow(
        runtime.flow_deps, org_id, conversation_id, body.flow, runtime.clock.now(), "api"
    )
    return {"said": list(step.say), "node": step.position.node, "outcome": step.outcome}


@agents_router.get("/v1/conversations/{conversation_id}/inactivity", response_model=InactivityOut)
def explain(runtime: RuntimeDep, org_id: OrgId, conversation_id: Id) -> InactivityOut:
    """The inactivity policy in force: each field with the level it came from, the stages,
    how many ran in the current silence, and when the next one fires."""
    with runtime.sessions() as session:
        conv, user_id = agents.load(session, org_id, conversation_id)
        language = get_bot(session, org_id, conv.bot_id).language
        policy, situation = policy_for(session, conv, language or runtime.settings.default_language)
    done = pol.stages_done(conv.timeout_stage, conv.timeout_seq, conv.activity_seq)
    next_stage = None
    if conv.last_activity_at is not None:
        next_one = pol.upcoming(policy, situation, conv.last_activity_at, done)
        if not isinstance(next_one, pol.Skip):
            stage, due = next_one
            next_stage = {"index": stage.index, "final": stage.final, "at": due.isoformat()}
    timer = runtime.timers.get(inactivity_key(conv.bot_id, user_id))
    return InactivityOut(
        situation=situation.value,
        policy=pol.layer_to_json(pol.as_layer(policy)),
        sources={k: v.value for k, v in policy.sources.items()},
        stages=[
            {
                "index": s.index,
                "after": format_duration(s.after),
                "final": s.final,
                "text": s.text,
                "template": s.template,
            }
            for s in pol.stages(policy)
        ],
        stages_done=done,
        next_stage=next_stage,
        pending_timer_at=timer.due_at if timer else None,
    )
