"""Inactivity policies per level: store, validate, resolve for a conversation, explain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from reengage.adapters.db.models import PolicyRow
from reengage.domain import policy as pol
from reengage.domain.activity import ChannelKind
from reengage.i18n import N_
from reengage.services.errors import InvalidInput, NotFound, parsing
from reengage.services.flows import get_flow
from reengage.services.tenancy import get_bot, scoped
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
                raise NotFound(
                    N_("node {node!r} not found in flow {flow!r}"),
                    "node",
                    node=scope.node,
                    flow=scope.flow,
                )


def put_policy(
    session: Session, org_id: int, scope: Scope, settings: dict[str, Any], now: datetime
) -> tuple[pol.PolicyLayer, list[str]]:
    """Validate and store one level's settings; return them with configuration warnings."""
    _check_scope(session, org_id, scope)
    with parsing(N_("the policy is malformed: {problem}")):
        try:
            layer = pol.parse_layer(settings)
            pol.check_names(layer)
        except pol.PolicyError as exc:
            raise InvalidInput(exc.message, exc.field) from exc
    if layer.fallback_flow is not None:
        if scope.bot_id is None:
            raise InvalidInput(
                N_("a fallback flow belongs to a bot: set it at bot, flow or node level"),
                "fallback_flow",
            )
        try:
            get_flow(session, org_id, scope.bot_id, layer.fallback_flow)
        except NotFound as exc:
            raise InvalidInput(
                N_("fallback flow {fallback_flow!r} does not exist in bot {bot_id}"),
                "fallback_flow",
                fallback_flow=layer.fallback_flow,
                bot_id=scope.bot_id,
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
        raise NotFound(N_("no policy at {key}"), "scope", key=scope.key)
    return pol.parse_layer(row.settings)


def stored_settings(session: Session, org_id: int, scope: Scope) -> dict[str, Any] | None:
    """One level's settings as stored (for the audit log's before and after), None if unset."""
    row = session.scalar(scoped(PolicyRow, org_id, PolicyRow.scope == scope.key))
    return dict(row.settings) if row is not None else None


def delete_policy(session: Session, org_id: int, scope: Scope) -> None:
    _check_scope(session, org_id, scope)
    row = session.scalar(scoped(PolicyRow, org_id, PolicyRow.scope == scope.key))
    if row is None:
        raise NotFound(N_("no policy at {key}"), "scope", key=scope.key)
    session.delete(row)  # through the ORM: the organization's configuration stamp moves
    session.flush()
    refresh_wake(session, org_id)
