"""A bot's life in the console: rotate its token (checked against the platform first, as
when it was added), turn it off and on, delete it (confirmed by typing its name). Each change
goes through the services the API uses, and so into the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from reengage.adapters.channels.telegram import get_me
from reengage.domain.activity import ChannelKind
from reengage.domain.console_access import Action
from reengage.entrypoints.api.schemas import Id
from reengage.entrypoints.console.pages import (
    TOKEN_MAX,
    _bot,
    actor_of,
    number_status,
    show_bot,
)
from reengage.entrypoints.console.web import (
    PREFIX,
    Allowed,
    ConsoleRoute,
    Refused,
    redirect,
    runtime_of,
)
from reengage.entrypoints.console.whatsapp_pages import SECRET
from reengage.services import bot_lifecycle, tenancy
from reengage.services.console_users import SessionUser
from reengage.timers.rebuild import rebuild_timers

bot_lifecycle_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

Editor = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.EDIT))]


def refused_token(
    request: Request, channel: str, credentials: dict[str, object], token: str
) -> Refused | None:
    """Why the platform (or its format) refuses `token` for this bot, None when it accepts it."""
    settings = runtime_of(request).settings
    if channel == ChannelKind.TELEGRAM.value:
        if not 3 <= len(token) <= TOKEN_MAX or ":" not in token or any(c.isspace() for c in token):
            return Refused(422, "err_token_format")
        me = get_me(token, settings.telegram_api_base)
        return Refused(422, "err_token", detail=me) if isinstance(me, str) else None
    if channel == ChannelKind.WHATSAPP.value:
        number = credentials.get("phone_number_id")
        if not SECRET.fullmatch(token) or len(token) > TOKEN_MAX * 2:
            return Refused(422, "err_wa_token_format")
        if not isinstance(number, str):
            return Refused(422, "err_no_token")
        accepted, detail = number_status(number, token, settings.whatsapp_api_base)
        return None if accepted else Refused(422, "err_wa_refused", detail=detail)
    return Refused(422, "err_no_token")


@bot_lifecycle_router.post("/bots/{bot_id}/token")
def rotate_token(request: Request, allowed: Editor, bot_id: Id) -> Response:
    """Replace the bot's platform token once the platform accepted the new one; its other
    credentials stay. A refused token changes nothing."""
    user, fields = allowed
    bot, credentials = _bot(request, user, bot_id)  # another organization's id: 404 first
    token = fields.get("token", "").strip()
    refusal = refused_token(request, bot.channel, credentials, token)
    if refusal is not None:
        return show_bot(request, user, bot_id, error=refusal)
    runtime = runtime_of(request)
    actor = (actor_of(user), runtime.clock.now())
    tenancy.rotate_token(runtime.sessions, runtime.credentials, user.org_id, bot_id, token, actor)
    telegram = bot.channel == ChannelKind.TELEGRAM.value
    done = "token_rotated_telegram" if telegram else "token_rotated"
    return show_bot(request, user, bot_id, done=done)


@bot_lifecycle_router.post("/bots/{bot_id}/disable")
def disable_bot(request: Request, allowed: Editor, bot_id: Id) -> Response:
    """Turn the bot off: its messages are still recorded, nothing is sent or fired."""
    user, _ = allowed
    runtime = runtime_of(request)
    now = runtime.clock.now()
    bot_lifecycle.disable_bot(runtime.sessions, user.org_id, bot_id, now, (actor_of(user), now))
    return redirect(f"{PREFIX}/bots/{bot_id}")


@bot_lifecycle_router.post("/bots/{bot_id}/enable")
def enable_bot(request: Request, allowed: Editor, bot_id: Id) -> Response:
    """Turn the bot on again; what came due while it was off runs now."""
    user, _ = allowed
    runtime = runtime_of(request)
    now = runtime.clock.now()

    def restore(at: datetime) -> int:
        return rebuild_timers(runtime.sessions, runtime.timers, runtime.registry, at)

    actor = (actor_of(user), now)
    bot_lifecycle.enable_bot(runtime.sessions, user.org_id, bot_id, now, actor, restore)
    return redirect(f"{PREFIX}/bots/{bot_id}")


@bot_lifecycle_router.post("/bots/{bot_id}/delete")
def delete_bot(request: Request, allowed: Editor, bot_id: Id) -> Response:
    """Delete the bot once its name was typed to confirm; its history stays."""
    user, fields = allowed
    bot, _ = _bot(request, user, bot_id)
    if fields.get("confirm", "").strip() != bot.name.strip():
        return show_bot(request, user, bot_id, error=Refused(422, "err_confirm_name"))
    runtime = runtime_of(request)
    now = runtime.clock.now()
    bot_lifecycle.delete_bot_and_webhook(runtime, user.org_id, bot_id, (actor_of(user), now))
    return redirect(f"{PREFIX}/bots")
