"""The console's pages: overview, bots, audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from reengage.adapters.channels.telegram import get_me
from reengage.adapters.channels.whatsapp import check_number
from reengage.adapters.db.models import Bot
from reengage.domain.activity import ChannelKind
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
from reengage.services import tenancy
from reengage.services.audit_log import recent_entries, record_change
from reengage.services.console_users import SessionUser
from reengage.services.errors import InvalidInput
from reengage.services.overview import bot_overview
from reengage.services.webhook_setup import register_telegram_webhook

pages_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

Viewer = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.VIEW))]
Editor = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.EDIT))]
TOKEN_MAX = 200


def actor_of(user: SessionUser) -> str:
    return f"user {user.email}"


@pages_router.get("/")
def overview(request: Request, allowed: Viewer) -> Response:
    user, _ = allowed
    runtime = runtime_of(request)
    now = runtime.clock.now()
    with runtime.sessions() as session:
        rows = bot_overview(
            session, user.org_id, now, runtime.settings.default_inactivity_threshold
        )
    return render(request, "overview.html", {"rows": rows, "now": now}, user=user)


def _bots_page(
    request: Request,
    user: SessionUser,
    error: Refused | None = None,
    **form: str,
) -> Response:
    runtime = runtime_of(request)
    with runtime.sessions() as session:
        bots = tenancy.list_bots(session, user.org_id)
    context = {"bots": bots, "error": error, "form": form}
    status = error.status if error is not None else 200
    return render(request, "bots.html", context, status=status, user=user)


@pages_router.get("/bots")
def bots(request: Request, allowed: Viewer) -> Response:
    return _bots_page(request, allowed[0])


@pages_router.post("/bots")
async def add_telegram_bot(request: Request, allowed: Editor) -> Response:
    """Add a Telegram bot once Telegram accepted its token (getMe)."""
    user, fields = allowed
    name = fields.get("name", "").strip()
    token = fields.get("token", "").strip()
    if not 1 <= len(name) <= 200 or "\x00" in name:
        return _bots_page(request, user, Refused(422, "err_name"), name=name[:200])
    if not 3 <= len(token) <= TOKEN_MAX or ":" not in token or any(c.isspace() for c in token):
        return _bots_page(request, user, Refused(422, "err_token_format"), name=name)
    runtime = runtime_of(request)
    me = await run_in_threadpool(get_me, token, runtime.settings.telegram_api_base)
    if isinstance(me, str):
        return _bots_page(request, user, Refused(422, "err_token", detail=me), name=name)
    bot = await run_in_threadpool(
        tenancy.create_bot,
        runtime.sessions,
        runtime.credentials,
        user.org_id,
        name=name,
        channel=ChannelKind.TELEGRAM,
        now=runtime.clock.now(),
        credentials={"token": token},
        actor=actor_of(user),
    )
    return redirect(f"{PREFIX}/bots/{bot.id}")


def _bot(request: Request, user: SessionUser, bot_id: int) -> tuple[Bot, dict[str, object]]:
    runtime = runtime_of(request)
    with runtime.sessions() as session:
        bot = tenancy.get_bot(session, user.org_id, bot_id)
        credentials = runtime.credentials.of(bot.id, bot.credentials) if bot.credentials else {}
    return bot, credentials


@pages_router.get("/bots/{bot_id}")
def bot_page(request: Request, allowed: Viewer, bot_id: Id) -> Response:
    return show_bot(request, allowed[0], bot_id)


def show_bot(
    request: Request,
    user: SessionUser,
    bot_id: int,
    error: Refused | None = None,
    done: str | None = None,
) -> Response:
    """The bot's page; `error` (a refused form) or `done` (a text key) said above it."""
    bot, credentials = _bot(request, user, bot_id)
    context = {
        "bot": bot,
        "webhook": "webhook_secret" in credentials,
        "notice": None,
        "error": error,
        "done": done,
    }
    if bot.channel == ChannelKind.WHATSAPP.value:  # what Meta's webhook form asks for
        public = runtime_of(request).settings.public_url.rstrip("/")
        context["wa_callback"] = f"{public}/webhooks/whatsapp/{bot.id}"
        context["wa_verify_token"] = credentials.get("verify_token")
    status = error.status if error is not None else 200
    return render(request, "bot.html", context, status=status, user=user)


@pages_router.get("/bots/{bot_id}/status")
async def bot_status(request: Request, allowed: Viewer, bot_id: Id) -> Response:
    """The bot's live status on its platform (a fragment, loaded by htmx)."""
    user, _ = allowed
    bot, credentials = await run_in_threadpool(_bot, request, user, bot_id)
    token = credentials.get("token")
    if bot.channel == ChannelKind.WHATSAPP.value:
        return await _whatsapp_status(request, user, credentials)
    if bot.channel != ChannelKind.TELEGRAM.value or not isinstance(token, str):
        return render(request, "bot_status.html", {"state": "unchecked"}, user=user)
    me = await run_in_threadpool(get_me, token, runtime_of(request).settings.telegram_api_base)
    if isinstance(me, str):
        return render(request, "bot_status.html", {"state": "refused", "detail": me}, user=user)
    username = str(me.get("username", "?"))
    return render(request, "bot_status.html", {"state": "ok", "username": username}, user=user)


def number_status(phone_number_id: str, token: str, api_base: str) -> tuple[bool, str]:
    """(accepted, the number as WhatsApp shows it or why not): the Graph API's lookup."""
    try:
        return True, check_number(phone_number_id, token, api_base)
    except ValueError as exc:
        return False, str(exc)


async def _whatsapp_status(
    request: Request, user: SessionUser, credentials: dict[str, object]
) -> Response:
    number, token = credentials.get("phone_number_id"), credentials.get("access_token")
    if not isinstance(number, str) or not isinstance(token, str):
        return render(request, "bot_status.html", {"state": "unchecked"}, user=user)
    base = runtime_of(request).settings.whatsapp_api_base
    ok, detail = await run_in_threadpool(number_status, number, token, base)
    context = {"state": "ok", "username": detail} if ok else {"state": "refused", "detail": detail}
    return render(request, "bot_status.html", context, user=user)


@pages_router.post("/bots/{bot_id}/webhook")
async def set_webhook(request: Request, allowed: Editor, bot_id: Id) -> Response:
    user, _ = allowed
    runtime = runtime_of(request)
    settings = runtime.settings

    def register() -> str:
        url = register_telegram_webhook(
            runtime.sessions,
            runtime.credentials,
            user.org_id,
            bot_id,
            settings.public_url,
            settings.telegram_api_base,
        )
        with runtime.sessions.begin() as session:
            now = runtime.clock.now()
            record_change(
                session,
                user.org_id,
                actor_of(user),
                "bot.webhook",
                f"bot {bot_id}",
                now,
                after={"url": url},
            )
        return url

    try:
        url = await run_in_threadpool(register)
    except InvalidInput as exc:
        raise Refused(422, "err_webhook", detail=exc.message) from exc
    bot, _ = await run_in_threadpool(_bot, request, user, bot_id)
    context = {"bot": bot, "webhook": True, "notice": url}
    return render(request, "bot.html", context, user=user)


@pages_router.get("/audit")
def audit(request: Request, allowed: Viewer) -> Response:
    user, _ = allowed
    with runtime_of(request).sessions() as session:
        entries = recent_entries(session, user.org_id)
    return render(request, "audit.html", {"entries": entries}, user=user)
