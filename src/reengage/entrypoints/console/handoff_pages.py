"""The handoff inbox: conversations handed to humans, taken, answered and closed here, with
how long each side has been silent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from reengage.domain.console_access import Action
from reengage.entrypoints.api.schemas import Id
from reengage.entrypoints.console.web import (
    PREFIX,
    Allowed,
    ConsoleRoute,
    Refused,
    redirect,
    render,
    runtime_of,
)
from reengage.services import agents
from reengage.services.console_users import SessionUser
from reengage.services.contact_history import handed_off

handoff_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

Viewer = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.VIEW))]
Editor = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.EDIT))]
REPLY_MAX = 4096


@handoff_router.get("/handoff")
def inbox(request: Request, allowed: Viewer) -> Response:
    user, _ = allowed
    runtime = runtime_of(request)
    with runtime.sessions() as session:
        rows = handed_off(session, user.org_id)
    context = {"rows": rows, "now": runtime.clock.now(), "me": user.email}
    return render(request, "handoff.html", context, user=user)


@handoff_router.post("/handoff/{conversation_id}/take")
async def take(request: Request, allowed: Editor, conversation_id: Id) -> Response:
    user, _ = allowed
    runtime = runtime_of(request)
    await run_in_threadpool(agents.take, runtime, user.org_id, conversation_id, user.email)
    return redirect(f"{PREFIX}/handoff")


@handoff_router.post("/handoff/{conversation_id}/reply")
async def reply(request: Request, allowed: Editor, conversation_id: Id) -> Response:
    """The agent's message, sent through the delivery record."""
    user, fields = allowed
    text = fields.get("text", "").strip()
    if not 1 <= len(text) <= REPLY_MAX:
        raise Refused(422, "err_reply")
    runtime = runtime_of(request)
    await run_in_threadpool(
        agents.reply, runtime, user.org_id, conversation_id, user.email, text, runtime.clock.now()
    )
    return redirect(f"{PREFIX}/handoff")


@handoff_router.post("/handoff/{conversation_id}/close")
async def close(request: Request, allowed: Editor, conversation_id: Id) -> Response:
    user, _ = allowed
    runtime = runtime_of(request)
    await run_in_threadpool(
        agents.close, runtime, user.org_id, conversation_id, runtime.clock.now()
    )
    return redirect(f"{PREFIX}/handoff")
