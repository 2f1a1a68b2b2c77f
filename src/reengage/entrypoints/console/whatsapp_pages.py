"""WhatsApp bots in the Bots page: added once the Graph API accepts the token for the phone
number id (the phone-number lookup), and their live status."""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from reengage.domain.activity import ChannelKind
from reengage.domain.console_access import Action
from reengage.entrypoints.console.pages import TOKEN_MAX, _bots_page, actor_of, number_status
from reengage.entrypoints.console.web import (
    PREFIX,
    Allowed,
    ConsoleRoute,
    Refused,
    redirect,
    runtime_of,
)
from reengage.services import tenancy
from reengage.services.console_users import SessionUser

whatsapp_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

Editor = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.EDIT))]
PHONE_NUMBER_ID = re.compile(r"[0-9]{5,30}")
SECRET = re.compile(r"[!-~]{8,200}")  # printable, no spaces


@whatsapp_router.post("/bots/whatsapp")
async def add_whatsapp_bot(request: Request, allowed: Editor) -> Response:
    """Add a WhatsApp Cloud API number once the Graph API accepted its token for it."""
    user, fields = allowed
    name = fields.get("name", "").strip()
    number = fields.get("phone_number_id", "").strip()
    token = fields.get("access_token", "").strip()
    app_secret = fields.get("app_secret", "").strip()
    keep = {"kind": "whatsapp", "name": name[:200], "phone_number_id": number[:30]}
    if not 1 <= len(name) <= 200:
        return _bots_page(request, user, Refused(422, "err_name"), **keep)
    if not PHONE_NUMBER_ID.fullmatch(number):
        return _bots_page(request, user, Refused(422, "err_wa_number"), **keep)
    if not SECRET.fullmatch(token) or len(token) > TOKEN_MAX * 2:
        return _bots_page(request, user, Refused(422, "err_wa_token_format"), **keep)
    if not SECRET.fullmatch(app_secret):
        return _bots_page(request, user, Refused(422, "err_wa_secret"), **keep)
    runtime = runtime_of(request)
    base = runtime.settings.whatsapp_api_base
    accepted, detail = await run_in_threadpool(number_status, number, token, base)
    if not accepted:
        return _bots_page(request, user, Refused(422, "err_wa_refused", detail=detail), **keep)
    credentials = {
        "phone_number_id": number,
        "access_token": token,
        "app_secret": app_secret,
        "verify_token": secrets.token_urlsafe(24),  # shown on the bot's page, for Meta's form
    }
    bot = await run_in_threadpool(
        tenancy.create_bot,
        runtime.sessions,
        runtime.credentials,
        user.org_id,
        name=name,
        channel=ChannelKind.WHATSAPP,
        now=runtime.clock.now(),
        credentials=credentials,
        actor=actor_of(user),
    )
    return redirect(f"{PREFIX}/bots/{bot.id}")
