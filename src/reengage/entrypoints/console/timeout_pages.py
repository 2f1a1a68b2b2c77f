"""Timeouts: the inactivity policies of every level (organization, bot, flow, question node)
in one view, editing one level (the API's services), and the explain view of one
conversation (which level set each field, what fires next and when)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from reengage.adapters.db.models import FlowRow, PolicyRow
from reengage.domain import policy as pol
from reengage.domain.console_access import Action
from reengage.entrypoints.api.agents import explain
from reengage.entrypoints.api.schemas import Id
from reengage.entrypoints.console.pages import actor_of
from reengage.entrypoints.console.web import (
    PREFIX,
    Allowed,
    ConsoleRoute,
    Refused,
    redirect,
    render,
    runtime_of,
)
from reengage.i18n import N_
from reengage.runtime import Runtime
from reengage.services import policies, tenancy
from reengage.services.agents import load
from reengage.services.audit_log import record_change
from reengage.services.console_users import SessionUser
from reengage.services.errors import InvalidInput, NotFound
from reengage.services.tenancy import scoped

timeout_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

Viewer = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.VIEW))]
Editor = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.EDIT))]

ACTIONS = tuple(a.value for a in pol.Action)
SITUATIONS = ("question", "bot_wait", "handoff")  # what a level may apply to
TEXT_FIELDS = ("timeout", "queue", "fallback_flow", "final_text", "final_template")


def _scope(request: Request) -> policies.Scope:
    """The level named by the query string: none (organization), bot, bot+flow, bot+flow+node."""
    bot = request.query_params.get("bot", "")
    flow = request.query_params.get("flow", "")
    node = request.query_params.get("node", "")
    if not bot:
        if flow or node:
            raise Refused(404, "err_not_found")
        return policies.Scope(pol.Level.ORGANIZATION)
    if not bot.isascii() or not bot.isdigit() or len(bot) > 18 or len(flow) > 64 or len(node) > 128:
        raise Refused(404, "err_not_found")
    if node and not flow:
        raise Refused(404, "err_not_found")
    level = pol.Level.NODE if node else pol.Level.FLOW if flow else pol.Level.BOT
    return policies.Scope(level, int(bot), flow or None, node or None)


def _query(scope: policies.Scope) -> str:
    parts = [("bot", scope.bot_id), ("flow", scope.flow), ("node", scope.node)]
    return urlencode([(k, v) for k, v in parts if v is not None])


def settings_of(fields: dict[str, str]) -> dict[str, Any]:
    """A level's settings from the form: an empty field is not set here (inherited)."""
    out: dict[str, Any] = {}
    for name in ("enabled", "skip_if_waiting_for_agent"):
        if fields.get(name) in ("true", "false"):
            out[name] = fields[name] == "true"
    for name in TEXT_FIELDS:
        if value := fields.get(name, "").strip():
            out[name] = value
    if action := fields.get("action", ""):
        out["action"] = action
    if fields.get("on_ambiguous"):
        out["on_ambiguous"] = fields["on_ambiguous"]
    applies = [s for s in SITUATIONS if fields.get(f"applies_{s}") == "on"]
    if applies:
        out["applies_to"] = applies
    if fields.get("reminders", "").strip():
        out["reminders"] = [_reminder(n, line) for n, line in _lines(fields["reminders"])]
    return out


def _lines(text: str) -> list[tuple[int, str]]:
    return [(n, line.strip()) for n, line in enumerate(text.splitlines()) if line.strip()]


def _reminder(index: int, line: str) -> dict[str, str]:
    """`10m | text` or `10m | template: name`."""
    after, sep, message = (part.strip() for part in line.partition("|"))
    if not sep or not after or not message:
        raise InvalidInput(N_("write each reminder as: 10m | text"), f"reminders[{index}]")
    if message.startswith("template:"):
        return {"after": after, "template": message.removeprefix("template:").strip()}
    return {"after": after, "text": message}


def form_of(settings: dict[str, Any] | None) -> dict[str, str]:
    """The form's fields showing a level's stored settings."""
    stored = settings or {}
    form = {name: str(stored.get(name) or "") for name in (*TEXT_FIELDS, "action", "on_ambiguous")}
    for name in ("enabled", "skip_if_waiting_for_agent"):
        value = stored.get(name)
        form[name] = "" if value is None else "true" if value else "false"
    for s in stored.get("applies_to") or ():
        form[f"applies_{s}"] = "on"
    form["reminders"] = "\n".join(
        f"{r['after']} | "
        + (f"template: {r['template']}" if r.get("template") else r["text"] or "")
        for r in stored.get("reminders") or ()
    )
    return form


def _levels(session: Session, org_id: int) -> dict[str, Any]:
    rows = session.scalars(scoped(PolicyRow, org_id).order_by(PolicyRow.scope)).all()
    bots = tenancy.list_bots(session, org_id)
    flows = session.scalars(scoped(FlowRow, org_id).order_by(FlowRow.bot_id, FlowRow.key)).all()
    questions = {
        (f.bot_id, f.key): [
            str(n.get("id")) for n in f.definition.get("nodes", []) if n.get("type") == "question"
        ]
        for f in flows
    }
    return {"rows": rows, "bots": bots, "flows": flows, "questions": questions}


@timeout_router.get("/timeouts")
def timeouts(request: Request, allowed: Viewer) -> Response:
    """Every level's policy of the organization, and where one can be set."""
    user, _ = allowed
    with runtime_of(request).sessions() as session:
        context = _levels(session, user.org_id)
    return render(request, "timeouts.html", context, user=user)


def _edit_page(
    request: Request,
    user: SessionUser,
    scope: policies.Scope,
    form: dict[str, str] | None = None,
    error: Refused | None = None,
    warnings: list[str] | None = None,
) -> Response:
    with runtime_of(request).sessions() as session:
        stored = _stored(session, user.org_id, scope)
    context = {
        "scope": scope,
        "query": _query(scope),
        "form": form if form is not None else form_of(stored),
        "stored": stored is not None,
        "error": error,
        "warnings": warnings or [],
        "actions": ACTIONS,
        "situations": SITUATIONS,
    }
    status = error.status if error is not None else 200
    return render(request, "timeout_edit.html", context, status=status, user=user)


def _stored(session: Session, org_id: int, scope: policies.Scope) -> dict[str, Any] | None:
    """The level's settings; NotFound when the level is not the organization's."""
    try:
        return pol.layer_to_json(policies.get_policy(session, org_id, scope))
    except NotFound as exc:
        if exc.field == "scope":  # the level exists and is the organization's, unset
            return None
        raise


@timeout_router.get("/timeouts/edit")
def edit_timeout(request: Request, allowed: Viewer) -> Response:
    return _edit_page(request, allowed[0], _scope(request))


def _put(
    runtime: Runtime, org_id: int, actor: str, scope: policies.Scope, settings: dict[str, Any]
) -> list[str]:
    """As the API's PUT of a level: stored, checked, written to the audit log."""
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        before = policies.stored_settings(session, org_id, scope)
        _, warnings = policies.put_policy(session, org_id, scope, settings, now)
        after = policies.stored_settings(session, org_id, scope)
        record_change(
            session, org_id, actor, "policy.put", scope.key, now, before=before, after=after
        )
    return warnings


@timeout_router.post("/timeouts/edit")
async def save_timeout(request: Request, allowed: Editor) -> Response:
    user, fields = allowed
    scope = _scope(request)
    runtime = runtime_of(request)
    try:
        settings = settings_of(fields)
        warnings = await run_in_threadpool(
            _put, runtime, user.org_id, actor_of(user), scope, settings
        )
    except InvalidInput as exc:
        error = Refused(422, "err_policy", field=exc.field or "?", detail=exc.message)
        return _edit_page(request, user, scope, form=fields, error=error)
    if warnings:
        return _edit_page(request, user, scope, warnings=warnings)
    return redirect(f"{PREFIX}/timeouts")


@timeout_router.post("/timeouts/delete")
async def delete_timeout(request: Request, allowed: Editor) -> Response:
    """Remove a level's settings (the next level applies again)."""
    user, _ = allowed
    scope = _scope(request)
    runtime = runtime_of(request)

    def delete() -> None:
        now = runtime.clock.now()
        with runtime.sessions.begin() as session:
            before = policies.stored_settings(session, user.org_id, scope)
            policies.delete_policy(session, user.org_id, scope)
            record_change(
                session, user.org_id, actor_of(user), "policy.delete", scope.key, now, before=before
            )

    await run_in_threadpool(delete)
    return redirect(f"{PREFIX}/timeouts")


@timeout_router.get("/conversations/{conversation_id}/timeout")
def explain_timeout(request: Request, allowed: Viewer, conversation_id: Id) -> Response:
    """The policy in force for one conversation: each field's level, the stages, what fires
    next and when (the API's explain)."""
    user, _ = allowed
    runtime = runtime_of(request)
    explained = explain(runtime, user.org_id, conversation_id)
    with runtime.sessions() as session:
        conv, user_id = load(session, user.org_id, conversation_id)
        contact_id = conv.contact_id
    context = {"x": explained, "conv": conv, "user_id": user_id, "contact_id": contact_id}
    return render(request, "timeout_explain.html", context, user=user)
