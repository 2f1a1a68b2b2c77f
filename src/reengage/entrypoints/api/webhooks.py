"""Inbound webhooks: Telegram, WhatsApp Cloud API, and the generic signed webhook.

A bad signature is 401, an unknown bot 404, a malformed body 400 — and none changes anything.
A valid call is recorded (deduplicated by the platform's update/message id) and answered 200.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reengage.adapters.channels import standard_webhooks
from reengage.adapters.channels.telegram import answer_callback_query
from reengage.adapters.channels.updates import (
    BadUpdate,
    json_object,
    read_telegram_update,
    read_whatsapp_notification,
    same_secret,
    whatsapp_signature_ok,
)
from reengage.adapters.db.models import Bot
from reengage.domain.activity import (
    ActivityEvent,
    ChannelKind,
    ConversationStatus,
    EventType,
    Inbound,
)
from reengage.entrypoints.api.deps import RuntimeDep
from reengage.entrypoints.api.schemas import Id, Text, UserId
from reengage.inbound.platform import apply_statuses, set_blocked
from reengage.runtime import Runtime
from reengage.services.errors import NotFound, ServiceError, Unauthorized
from reengage.services.record_activity import check_events

webhooks_router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class BadPayload(ServiceError):
    status = 400
    code = "bad_payload"


def _bot(runtime: Runtime, bot_id: int, kind: ChannelKind) -> tuple[Bot, dict[str, Any]]:
    with runtime.sessions() as session:
        # unscoped: a webhook finds its tenant by the bot it names; its signature proves it
        bot = session.get(Bot, bot_id)
    if bot is None or bot.channel != kind.value:
        raise NotFound(f"no {kind.value} bot {bot_id}", "bot_id")
    return bot, runtime.credentials.of(bot.id, bot.credentials)


@contextmanager
def _reading() -> Iterator[None]:
    try:
        yield
    except BadUpdate as exc:
        raise BadPayload(str(exc)) from exc


async def _raw_body(request: Request) -> bytes:
    return await request.body()


# Read on the event loop; the endpoints, which touch the database, run in the thread pool.
RawBody = Annotated[bytes, Depends(_raw_body)]


# --- Telegram -------------------------------------------------------------------------------


@webhooks_router.post("/telegram/{bot_id}", responses={400: {}, 401: {}, 404: {}})
def telegram_webhook(
    bot_id: Id, request: Request, body: RawBody, runtime: RuntimeDep, background: BackgroundTasks
) -> dict[str, bool]:
    """Telegram `setWebhook` target; checks `X-Telegram-Bot-Api-Secret-Token`.

    Answers at once; a button press is acknowledged to Telegram after the response."""
    bot, credentials = _bot(runtime, bot_id, ChannelKind.TELEGRAM)
    if not same_secret(
        request.headers.get("x-telegram-bot-api-secret-token"), credentials.get("webhook_secret")
    ):
        raise Unauthorized("bad or missing X-Telegram-Bot-Api-Secret-Token")
    now = runtime.clock.now()
    with _reading():
        update = read_telegram_update(bot.id, json_object(body), now)
    check_events(update.events)  # nothing is written unless all of the update can be
    if update.membership is not None:
        who = update.membership
        set_blocked(
            runtime.sessions, runtime.timers, bot.org_id, bot.id, who.user_id, who.blocked, now
        )
    if update.events:
        runtime.record(bot.org_id, update.events)
    if update.callback_query_id and credentials.get("token"):
        background.add_task(
            answer_callback_query,
            credentials["token"],
            update.callback_query_id,
            runtime.settings.telegram_api_base,
        )
    return {"ok": True}


# --- WhatsApp -------------------------------------------------------------------------------


@webhooks_router.get("/whatsapp/{bot_id}", response_class=PlainTextResponse)
def whatsapp_verify(bot_id: Id, request: Request, runtime: RuntimeDep) -> PlainTextResponse:
    """Meta's verification handshake: echo `hub.challenge` when `hub.verify_token` matches."""
    _, credentials = _bot(runtime, bot_id, ChannelKind.WHATSAPP)
    params = request.query_params
    if params.get("hub.mode") != "subscribe" or not same_secret(
        params.get("hub.verify_token"), credentials.get("verify_token")
    ):
        return PlainTextResponse("verification failed", status_code=403)
    return PlainTextResponse(params.get("hub.challenge", ""))


@webhooks_router.post("/whatsapp/{bot_id}", responses={400: {}, 401: {}, 404: {}})
def whatsapp_webhook(bot_id: Id, request: Request, body: RawBody, runtime: RuntimeDep) -> Response:
    """WhatsApp Cloud API notifications; `X-Hub-Signature-256` is checked over the raw body."""
    bot, credentials = _bot(runtime, bot_id, ChannelKind.WHATSAPP)
    app_secret = str(credentials.get("app_secret", ""))
    if not whatsapp_signature_ok(app_secret, body, request.headers.get("x-hub-signature-256")):
        raise Unauthorized("bad or missing X-Hub-Signature-256")
    now = runtime.clock.now()
    with _reading():
        events, statuses = read_whatsapp_notification(bot.id, json_object(body), now)
    if events:
        runtime.record(bot.org_id, events)
    if statuses:
        apply_statuses(runtime.sessions, bot.id, statuses, now)
    return Response(status_code=200)


# --- Generic --------------------------------------------------------------------------------


class GenericInbound(BaseModel):
    """What any platform posts: an activity of one user, or a block/unblock."""

    model_config = ConfigDict(extra="forbid")

    type: EventType | str = Field(description="An activity type, or user.blocked / user.unblocked")
    user_id: UserId
    status: ConversationStatus | None = None
    text: Text | None = Field(
        default=None, max_length=4096, description="A user message's text (flows, keywords)"
    )


@webhooks_router.post("/generic/{bot_id}", responses={400: {}, 401: {}, 404: {}})
def generic_webhook(
    bot_id: Id, request: Request, body: RawBody, runtime: RuntimeDep
) -> dict[str, bool]:
    """Activity from any platform, signed the Standard Webhooks way with the bot's secret."""
    bot, credentials = _bot(runtime, bot_id, ChannelKind.WEBHOOK)
    try:
        msg_id = standard_webhooks.verify(
            str(credentials.get("secret", "")), dict(request.headers), body
        )
    except (standard_webhooks.SignatureError, ValueError) as exc:
        raise Unauthorized(f"bad webhook signature: {exc}") from exc
    try:
        with _reading():
            inbound = GenericInbound.model_validate(json_object(body))
    except ValidationError as exc:
        raise BadPayload(f"invalid body: {exc.errors()[0]['msg']}") from exc
    now = runtime.clock.now()
    if inbound.type in ("user.blocked", "user.unblocked"):
        set_blocked(
            runtime.sessions,
            runtime.timers,
            bot.org_id,
            bot.id,
            inbound.user_id,
            inbound.type == "user.blocked",
            now,
        )
        return {"ok": True}
    try:
        kind = EventType(inbound.type)
    except ValueError as exc:
        raise BadPayload(f"unknown type {inbound.type!r}") from exc
    said = Inbound(inbound.text) if kind is EventType.USER_MESSAGE else None
    runtime.record(
        bot.org_id,
        [ActivityEvent(f"gw:{msg_id}", kind, bot.id, inbound.user_id, now, inbound.status, said)],
    )
    return {"ok": True}
