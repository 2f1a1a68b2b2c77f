"""Owners' pages: the organization's API keys and its people (invitations)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from reengage.domain.console_access import Action, parse_role
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
from reengage.services import tenancy
from reengage.services.console_users import (
    SessionUser,
    create_invite,
    list_invites,
    list_users,
)

admin_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

Owner = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.ADMINISTER))]


def _keys_page(request: Request, user: SessionUser, created: str | None = None) -> Response:
    with runtime_of(request).sessions() as session:
        keys = tenancy.list_api_keys(session, user.org_id)[::-1]  # newest first
    return render(request, "keys.html", {"keys": keys, "created": created}, user=user)


@admin_router.get("/keys")
def keys(request: Request, allowed: Owner) -> Response:
    return _keys_page(request, allowed[0])


@admin_router.post("/keys")
async def create_key(request: Request, allowed: Owner) -> Response:
    user, fields = allowed
    name = fields.get("name", "").strip() or "console"
    if len(name) > 200 or "\x00" in name:
        raise Refused(422, "err_name")
    runtime = runtime_of(request)
    plaintext = await run_in_threadpool(
        tenancy.issue_api_key,
        runtime.sessions,
        user.org_id,
        name,
        runtime.clock.now(),
        actor_of(user),
    )
    return _keys_page(request, user, created=plaintext)


@admin_router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, allowed: Owner, key_id: Id) -> Response:
    user, _ = allowed
    runtime = runtime_of(request)
    await run_in_threadpool(
        tenancy.revoke_api_key,
        runtime.sessions,
        user.org_id,
        key_id,
        runtime.clock.now(),
        actor_of(user),
    )
    return redirect(f"{PREFIX}/keys")


def _people_page(request: Request, user: SessionUser, link: str | None = None) -> Response:
    runtime = runtime_of(request)
    with runtime.sessions() as session:
        users = list_users(session, user.org_id)
        invites = list_invites(session, user.org_id, runtime.clock.now())
    context = {"users": users, "invites": invites, "link": link}
    return render(request, "people.html", context, user=user)


@admin_router.get("/people")
def people(request: Request, allowed: Owner) -> Response:
    return _people_page(request, allowed[0])


@admin_router.post("/people/invite")
async def invite(request: Request, allowed: Owner) -> Response:
    user, fields = allowed
    role = parse_role(fields.get("role", ""))
    if role is None:
        raise Refused(422, "err_invalid", field="role")
    runtime = runtime_of(request)
    now = runtime.clock.now()

    token = await run_in_threadpool(
        create_invite, runtime.sessions, user.org_id, role, user.user_id, now, actor_of(user)
    )
    link = str(request.url_for("invite_form", token=token))
    return _people_page(request, user, link=link)
