"""Logging in and out, accepting an invitation, the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from reengage.entrypoints.console.texts import LANGUAGES
from reengage.entrypoints.console.web import (
    LANGUAGE_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    ConsoleRoute,
    Refused,
    checked_form,
    form_token,
    logged_in,
    redirect,
    render,
    runtime_of,
    set_form_cookie,
    set_session_cookie,
)
from reengage.services.console_users import (
    accept_invite,
    invite_role,
    log_in,
    log_out,
)
from reengage.services.errors import ServiceError

auth_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)


def _login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = form_token(request)
    response = render(request, "login.html", {"form_csrf": token, "error": error}, status=status)
    set_form_cookie(response, request, token)
    return response


@auth_router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


@auth_router.post("/login")
async def login(request: Request) -> Response:
    fields = await checked_form(request, request.cookies.get("rg_form", ""))
    runtime = runtime_of(request)
    try:
        new = await run_in_threadpool(
            log_in,
            runtime.sessions,
            fields.get("email", "")[:300],
            fields.get("password", "")[:300],
            runtime.clock.now(),
            runtime.settings.console_session_ttl,
        )
    except ServiceError:
        return _login_page(request, "err_login", status=401)
    response = redirect(f"{PREFIX}/")
    set_session_cookie(response, request, new.token)
    return response


@auth_router.post("/logout")
async def logout(request: Request, _: Annotated[object, Depends(logged_in)]) -> Response:
    user = request.state.console_user
    await checked_form(request, user.csrf_token)
    await run_in_threadpool(log_out, runtime_of(request).sessions, request.cookies[SESSION_COOKIE])
    response = redirect(f"{PREFIX}/login")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@auth_router.get("/language")
def switch_language(
    request: Request,
    to: Annotated[str, Query(max_length=8)],
    back: Annotated[str, Query(max_length=200)] = f"{PREFIX}/",
) -> Response:
    # Only back to a console page: never an open redirect.
    target = back if back.startswith(f"{PREFIX}/") and "//" not in back else f"{PREFIX}/"
    response = redirect(target)
    if to in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, to, max_age=365 * 86400, path=PREFIX, samesite="lax")
    return response


@auth_router.get("/invite/{token}")
def invite_form(request: Request, token: str) -> Response:
    runtime = runtime_of(request)
    role = invite_role(runtime.sessions, token, runtime.clock.now())
    if role is None:
        raise Refused(404, "err_invite")
    csrf = form_token(request)
    response = render(request, "invite.html", {"role": role.value, "form_csrf": csrf})
    set_form_cookie(response, request, csrf)
    return response


@auth_router.post("/invite/{token}")
async def invite_accept(request: Request, token: str) -> Response:
    fields = await checked_form(request, request.cookies.get("rg_form", ""))
    runtime = runtime_of(request)
    now = runtime.clock.now()

    def accept() -> str:
        _, new = accept_invite(
            runtime.sessions,
            token[:100],
            fields.get("email", "")[:300],
            fields.get("password", "")[:300],
            now,
            runtime.settings.console_session_ttl,
        )
        return new.token

    cookie = await run_in_threadpool(accept)
    response = redirect(f"{PREFIX}/")
    set_session_cookie(response, request, cookie)
    return response
