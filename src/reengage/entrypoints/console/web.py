"""What every console page shares: templates, the language, who is logged in, the CSRF check,
and how a refusal is answered (a page, never JSON)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from reengage.domain.console_access import Action, allows
from reengage.entrypoints.console.texts import LANGUAGES, text
from reengage.runtime import Runtime
from reengage.services.console_users import SessionUser, session_user
from reengage.services.errors import ServiceError

SESSION_COOKIE = "rg_session"
LANGUAGE_COOKIE = "rg_lang"
FORM_COOKIE = "rg_form"  # double-submit token of the forms used before a login
PREFIX = "/console"

# Pages load nothing from elsewhere and run no inline script: what an injected tag could do is
# limited even if escaping ever failed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_ENV = Environment(
    loader=PackageLoader("reengage.entrypoints.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class LoginRequired(Exception):
    """No valid session: the browser goes to the login page."""


class Refused(Exception):
    """A console request answered with a page that says why (a text key of texts.py)."""

    def __init__(self, status: int, key: str, **values: Any) -> None:
        super().__init__(key)
        self.status, self.key, self.values = status, key, values


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def language_of(request: Request) -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return runtime_of(request).settings.default_language


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _pretty(value: object) -> str:
    # Plain text, escaped by the template like any other (tojson would hide `<` as \u003c).
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)


_ENV.filters["when"] = _when
_ENV.filters["pretty"] = _pretty
_ENV.filters["ago"] = _ago


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    user: SessionUser | None = None,
) -> HTMLResponse:
    language = language_of(request)
    values = {
        "t": lambda key, **kw: text(language, key, **kw),
        "lang": language,
        "user": user,
        "path": request.url.path,
        "can_edit": user is not None and allows(user.role, Action.EDIT),
        "can_administer": user is not None and allows(user.role, Action.ADMINISTER),
        **(context or {}),
    }
    body = _ENV.get_template(template).render(values)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303, headers={"Cache-Control": "no-store"})


# Service messages the console knows how to say in the operator's language.
_KNOWN = {
    "enter a valid email address": "err_email",
    "this email already has an account": "err_email_taken",
    "wrong email or password": "err_login",
    "this invitation is unknown, used or expired": "err_invite",
}


def _refusal_of(exc: ServiceError) -> Refused:
    if exc.message in _KNOWN:
        return Refused(exc.status, _KNOWN[exc.message])
    if exc.message.startswith("the password needs"):
        return Refused(exc.status, "err_password")
    if exc.status == 404:
        return Refused(404, "err_not_found")
    return Refused(exc.status, "err_invalid", field=exc.field or "?")


class ConsoleRoute(APIRoute):
    """Console routes answer with pages: a missing login is a redirect to the login page, a
    refusal (CSRF, role, another organization's id, a bad value) a page that says why."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                return redirect(f"{PREFIX}/login")
            except RequestValidationError:
                return error_page(request, Refused(404, "err_not_found"))
            except ServiceError as exc:
                return error_page(request, _refusal_of(exc))
            except Refused as exc:
                return error_page(request, exc)
            finally:
                await request.close()  # the files of a form it read (uploads)

        return route


def error_page(request: Request, refusal: Refused) -> HTMLResponse:
    user = getattr(request.state, "console_user", None)
    message = text(language_of(request), refusal.key, **refusal.values)
    return render(request, "error.html", {"message": message}, status=refusal.status, user=user)


async def logged_in(request: Request) -> SessionUser:
    runtime = runtime_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    user = await run_in_threadpool(session_user, runtime.sessions, token, runtime.clock.now())
    if user is None:
        raise LoginRequired
    request.state.console_user = user
    return user


async def checked_form(request: Request, expected: str) -> dict[str, str]:
    """The posted form's text fields, once its `csrf` field matched `expected`."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    sent = fields.get("csrf", "")
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        raise Refused(403, "err_csrf")
    for name, value in fields.items():
        # What no column may hold (PostgreSQL refuses NUL; a lone surrogate is no text).
        if len(value) > 10_000 or any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in value):
            raise Refused(422, "err_invalid", field=name[:40])
    return fields


class Allowed:
    """A console request by a logged-in user whose role allows `action`; a POST must carry
    the session's CSRF token. Checked in that order: login, CSRF, role."""

    def __init__(self, action: Action) -> None:
        self.action = action

    async def __call__(self, request: Request) -> tuple[SessionUser, dict[str, str]]:
        user = await logged_in(request)
        fields: dict[str, str] = {}
        if request.method == "POST":
            fields = await checked_form(request, user.csrf_token)
        if not allows(user.role, self.action):
            raise Refused(403, "err_forbidden")
        return user, fields


def _secure(request: Request) -> bool:
    # Behind a TLS-terminating proxy the request arrives as http: the public URL tells.
    public = runtime_of(request).settings.public_url
    return request.url.scheme == "https" or public.startswith("https://")


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    # The server ends the session at its expiry; the browser keeps the cookie as long (the
    # server's clock may run fast in a demo: a lifetime, not a date).
    ttl = runtime_of(request).settings.console_session_ttl
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(ttl.total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


def form_token(request: Request) -> str:
    """The double-submit token of a form shown before login (its cookie, or a new one)."""
    existing = request.cookies.get(FORM_COOKIE, "")
    return existing if 20 <= len(existing) <= 64 else secrets.token_urlsafe(24)


def set_form_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        FORM_COOKIE,
        token,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
