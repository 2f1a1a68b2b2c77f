"""Inactivity policies per level: store, validate, resolve for a conversation, explain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from reengage.adapters.db.models import Conversation, FlowRow, PolicyRow
from reengage.domain import policy as pol
from reengage.domain.activity import ChannelKind, ConversationStatus
from reengage.domain.flow import NodeType
from reengage.services.errors import InvalidInput, NotFound, parsing
from reengage.services.flows import get_flow
from reengage.services.tenancy import get_bot, scoped, scoped_delete
from reengage.services.wake import refresh_wake


@dataclass(frozen=True, slots=True)
class Scope:
    level: pol.Level
    bot_id: int | None = None
    flow: str | None = None
    node: str | None = None

    @property
    def key(self) -> str:
        by_level: dict[pol.Level, list[object]] = {
            pol.Level.ORGANIZATION: [],
            pol.Level.BOT: [self.bot_id],
            pol.Level.FLOW: [self.bot_id, self.flow],
            pol.Level.NODE: [self.bot_id, self.flow, self.node],
        }
        parts = by_level.get(self.level, [])
        return ":".join([self.level.value, *(str(p) for p in parts)])


def _check_scope(session: Session, org_id: int, scope: Scope) -> None:
    if scope.level is pol.Level.ORGANIZATION:
        return
    assert scope.bot_id is not None
    get_bot(session, org_id, scope.bot_id)
    if scope.level in (pol.Level.FLOW, pol.Level.NODE):
        flow = get_flow(session, org_id, scope.bot_id, str(scope.flow))
        if scope.level is pol.Level.NODE:
            nodes = {n.get("id"): n for n in flow.definition.get("nodes", [])}
            if scope.node not in nodes:
                raise NotFound(f"node {scope.node!r} not found in flow {scope.flow!r}", "node")


def put_policy(
    session: Session, org_id: int, scope: Scope, settings: dict[str, Any], now: datetime
) -> tuple[pol.PolicyLayer, list[str]]:
    """Validate and store one level's settings; return them with configuration warnings."""
    _check_scope(session, org_id, scope)
    with parsing("the policy"):
        try:
            layer = pol.parse_layer(settings)
            pol.check_names(layer)
        except pol.PolicyError as exc:
            raise InvalidInput(exc.message, exc.field) from exc
    if layer.fallback_flow is not None:
        if scope.bot_id is None:
            raise InvalidInput(
                "a fallback flow belongs to a bot: set it at bot, flow or node level",
                "fallback_flow",
            )
        try:
            get_flow(session, org_id, scope.bot_id, layer.fallback_flow)
        except NotFound as exc:
            raise InvalidInput(
                f"fallback flow {layer.fallback_flow!r} does not exist in bot {scope.bot_id}",
                "fallback_flow",
            ) from exc
    row = session.scalar(scoped(PolicyRow, org_id, PolicyRow.scope == scope.key))
    if row is None:
        row = PolicyRow(
            org_id=org_id,
            scope=scope.key,
            level=scope.level.value,
            bot_id=scope.bot_id,
            settings={},
            updated_at=now,
        )
        session.add(row)
    row.settings, row.updated_at = pol.layer_to_json(layer), now
    session.flush()
    warnings = []
    if scope.bot_id is not None:
        bot = get_bot(session, org_id, scope.bot_id)
        if bot.channel == ChannelKind.WHATSAPP.value:
            warnings = pol.whatsapp_warnings(layer)
    refresh_wake(session, org_id)
    return layer, warnings


def get_policy(session: Session, org_id: int, scope: Scope) -> pol.PolicyLayer:
    _check_scope(session, org_id, scope)
    row = session.scalar(scoped(PolicyRow, org_id, PolicyRow.scope == scope.key))
    if row is None:
        raise NotFound(f"no policy at {scope.key}", "scope")
    return pol.parse_layer(row.settings)


def delete_policy(session: Session, org_id: int, scope: Scope) -> None:
    _check_scope(session, org_id, scope)
    deleted = session.execute(scoped_delete(PolicyRow, org_id, PolicyRow.scope == scope.key))
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no policy at {scope.key}", "scope")
    refresh_wake(session, org_id)


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


def node_type(session: Session, conv: Conversation) -> str | None:
    """The type of the node the conversation is at (None outside a flow)."""
    flow, node = conv.active_flow, conv.active_node
    if flow is None or node is None:
        return None
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
    session: Session, conv: Conversation, language: str = "pt-BR"
) -> tuple[pol.Policy, pol.Situation]:
    if conv.status == ConversationStatus.HANDOFF.value:
        # With a human, the flow's position no longer speaks: bot and organization levels do.
        layers = layers_for(session, conv.org_id, conv.bot_id, None, None)
        return pol.resolve(layers, False, language), situation_of(conv, False)
    at_question = node_type(session, conv) == NodeType.QUESTION.value
    layers = layers_for(
        session,
        conv.org_id,
        conv.bot_id,
        conv.active_flow,
        conv.active_node if at_question else None,
    )
    return pol.resolve(layers, at_question, language), situation_of(conv, at_question)
