"""Inbound webhooks: Telegram, WhatsApp Cloud API, and the generic signed webhook.

A bad signature is 401, an unknown bot 404, a malformed body 400 — and none changes anything.
A valid call is recorded (deduplicated by the platform's update/message id) and answered 200.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reengage.adapters.channels import standard_webhooks
from reengage.adapters.channels.telegram import answer_callback_query
from reengage.adapters.crypto import decrypt_json
from reengage.adapters.db.models import Bot
from reengage.domain.activity import (
    ActivityEvent,
    ChannelKind,
    ConversationStatus,
    EventType,
    Inbound,
)
from reengage.domain.bounds import text_problem
from reengage.domain.contact import language_tag
from reengage.entrypoints.api.deps import RuntimeDep
from reengage.entrypoints.api.schemas import Id, Text, UserId
from reengage.inbound.platform import StatusUpdate, apply_statuses, set_blocked
from reengage.runtime import Runtime
from reengage.services.errors import NotFound, ServiceError, Unauthorized
from reengage.services.record_activity import check_events

webhooks_router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class BadPayload(ServiceError):
    status = 400
    code = "bad_payload"


def _bot(runtime: Runtime, bot_id: int, kind: ChannelKind) -> tuple[Bot, dict[str, Any]]:
    with runtime.sessions() as session:
        bot = session.get(Bot, bot_id)
    if bot is None or bot.channel != kind.value:
        raise NotFound(f"no {kind.value} bot {bot_id}", "bot_id")
    secret = runtime.settings.secret_key.get_secret_value()
    return bot, decrypt_json(secret, bot.credentials) if bot.credentials else {}


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadPayload("body is not valid JSON (or nested too deeply)") from exc
    if not isinstance(data, dict):
        raise BadPayload("body must be a JSON object")
    return data


def _user_id(value: Any, field: str) -> str:
    """A platform's user or chat id, as the stores can hold it."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadPayload(f"{field} must be a string or an integer")
    user = str(value)
    if not 1 <= len(user) <= 128 or text_problem(user):
        raise BadPayload(f"{field} must be 1 to 128 storable characters")
    return user


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(
        str(given).encode(), str(expected).encode()
    )


# --- Telegram -------------------------------------------------------------------------------


def _telegram_events(bot: Bot, update: dict[str, Any], now: datetime) -> list[ActivityEvent]:
    update_id = update.get("update_id")
    if not isinstance(update_id, int):
        raise BadPayload("update_id is missing or not an integer")
    inbound = None
    message = update.get("message") or update.get("edited_message")
    if isinstance(message, dict):
        chat = message.get("chat") or {}
        if not isinstance(chat, dict) or "id" not in chat:
            raise BadPayload("message.chat.id is missing")
        user = _user_id(chat["id"], "message.chat.id")
        sender: dict[str, Any] = message.get("from") or {}
        if not isinstance(sender, dict):
            raise BadPayload("message.from must be an object")
        text = message.get("text") if "text" in message else message.get("caption")
        if update.get("message"):  # an edit is activity, not a new answer
            inbound = _inbound(text, sender)
    elif isinstance(update.get("callback_query"), dict):
        sender = update["callback_query"].get("from") or {}
        if not isinstance(sender, dict) or "id" not in sender:
            raise BadPayload("callback_query.from.id is missing")
        user = _user_id(sender["id"], "callback_query.from.id")
    else:
        return []
    return [
        ActivityEvent(f"tg:{update_id}", EventType.USER_MESSAGE, bot.id, user, now, None, inbound)
    ]


def _inbound(text: Any, sender: dict[str, Any]) -> Inbound:
    """What a Telegram message says: its text or caption, its sender's name and language."""
    names = [sender.get("first_name"), sender.get("last_name")]
    name = " ".join(str(n) for n in names if isinstance(n, str) and n) or None
    code = sender.get("language_code")
    return Inbound(
        text if isinstance(text, str) else None,
        name[:200] if name else None,
        None,
        language_tag(code if isinstance(code, str) else None),
    )


def _membership(update: dict[str, Any]) -> tuple[str, bool] | None:
    """(chat id, blocked) when the update says the user blocked or unblocked the bot."""
    member = update.get("my_chat_member")
    if not isinstance(member, dict):
        return None
    new, chat = member.get("new_chat_member"), member.get("chat")
    status = new.get("status") if isinstance(new, dict) else None
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if status not in ("kicked", "member") or chat_id is None:
        return None
    return _user_id(chat_id, "my_chat_member.chat.id"), status == "kicked"


@webhooks_router.post("/telegram/{bot_id}", responses={400: {}, 401: {}, 404: {}})
async def telegram_webhook(
    bot_id: Id, request: Request, runtime: RuntimeDep, background: BackgroundTasks
) -> dict[str, bool]:
    """Telegram `setWebhook` target; checks `X-Telegram-Bot-Api-Secret-Token`.

    Answers at once; a button press is acknowledged to Telegram after the response."""
    bot, credentials = _bot(runtime, bot_id, ChannelKind.TELEGRAM)
    if not _same(
        request.headers.get("x-telegram-bot-api-secret-token"), credentials.get("webhook_secret")
    ):
        raise Unauthorized("bad or missing X-Telegram-Bot-Api-Secret-Token")
    update = _json(await request.body())
    now = runtime.clock.now()
    events = _telegram_events(bot, update, now)
    check_events(events)  # nothing is written unless all of the update can be
    membership = _membership(update)
    if membership is not None:
        chat_id, blocked = membership
        set_blocked(runtime.sessions, runtime.timers, bot.org_id, bot.id, chat_id, blocked, now)
    if events:
        runtime.record(bot.org_id, events)
    query = update.get("callback_query")
    if isinstance(query, dict) and query.get("id") and credentials.get("token"):
        background.add_task(
            answer_callback_query,
            credentials["token"],
            str(query["id"]),
            runtime.settings.telegram_api_base,
        )
    return {"ok": True}


# --- WhatsApp -------------------------------------------------------------------------------


@webhooks_router.get("/whatsapp/{bot_id}", response_class=PlainTextResponse)
def whatsapp_verify(bot_id: Id, request: Request, runtime: RuntimeDep) -> PlainTextResponse:
    """Meta's verification handshake: echo `hub.challenge` when `hub.verify_token` matches."""
    _, credentials = _bot(runtime, bot_id, ChannelKind.WHATSAPP)
    params = request.query_params
    if params.get("hub.mode") != "subscribe" or not _same(
        params.get("hub.verify_token"), credentials.get("verify_token")
    ):
        return PlainTextResponse("verification failed", status_code=403)
    return PlainTextResponse(params.get("hub.challenge", ""))


def _whatsapp_parse(
    bot: Bot, payload: dict[str, Any], now: datetime
) -> tuple[list[ActivityEvent], list[StatusUpdate]]:
    if payload.get("object") != "whatsapp_business_account":
        raise BadPayload("object must be whatsapp_business_account")
    events: list[ActivityEvent] = []
    statuses: list[StatusUpdate] = []
    try:
        for entry in payload.get("entry", []):
            for change in entry.get("changes", []):
                value = change.get("value", {})
                names = {
                    str(c.get("wa_id")): (c.get("profile") or {}).get("name")
                    for c in value.get("contacts", [])
                }
                for message in value.get("messages", []):
                    events.append(_whatsapp_event(bot, message, names, now))
                for status in value.get("statuses", []):
                    error = (status.get("errors") or [{}])[0]
                    statuses.append(
                        StatusUpdate(
                            str(status["id"]),
                            str(status["status"]),
                            error.get("code"),
                            error.get("title"),
                        )
                    )
    except (KeyError, AttributeError, TypeError, ValueError, OverflowError, OSError) as exc:
        raise BadPayload(f"malformed WhatsApp payload: {exc!r}") from exc
    return events, statuses


def _whatsapp_event(
    bot: Bot, message: dict[str, Any], names: dict[str, Any], now: datetime
) -> ActivityEvent:
    """A user's message as activity at the time they wrote it (Meta delivers webhooks late
    and retries them for days; the 24-hour window opened when they wrote)."""
    sender = _user_id(message["from"], "from")
    written = datetime.fromtimestamp(int(message["timestamp"]), UTC)
    name = names.get(sender)
    inbound = Inbound(
        _whatsapp_text(message), str(name)[:200] if isinstance(name, str) and name else None
    )
    return ActivityEvent(
        f"wa:{message['id']}",
        EventType.USER_MESSAGE,
        bot.id,
        sender,
        min(written, now),
        None,
        inbound,
    )


def _whatsapp_text(message: dict[str, Any]) -> str | None:
    """The words of a message: a text, the title of the button or list row the user chose,
    a template quick-reply's text, or a media caption."""
    kind = message.get("type")
    part = message.get(kind) if isinstance(kind, str) else None
    if not isinstance(part, dict):
        return None
    if kind == "text":
        text = part.get("body")
    elif kind == "interactive":
        reply = part.get("button_reply") or part.get("list_reply") or {}
        text = reply.get("title") if isinstance(reply, dict) else None
    elif kind == "button":
        text = part.get("text")
    else:
        text = part.get("caption")
    return text if isinstance(text, str) else None


@webhooks_router.post("/whatsapp/{bot_id}", responses={400: {}, 401: {}, 404: {}})
async def whatsapp_webhook(bot_id: Id, request: Request, runtime: RuntimeDep) -> Response:
    """WhatsApp Cloud API notifications; `X-Hub-Signature-256` is checked over the raw body."""
    bot, credentials = _bot(runtime, bot_id, ChannelKind.WHATSAPP)
    body = await request.body()
    expected = (
        "sha256="
        + hmac.new(
            str(credentials.get("app_secret", "")).encode(), body, hashlib.sha256
        ).hexdigest()
    )
    if not _same(request.headers.get("x-hub-signature-256"), expected):
        raise Unauthorized("bad or missing X-Hub-Signature-256")
    now = runtime.clock.now()
    events, statuses = _whatsapp_parse(bot, _json(body), now)
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
async def generic_webhook(bot_id: Id, request: Request, runtime: RuntimeDep) -> dict[str, bool]:
    """Activity from any platform, signed the Standard Webhooks way with the bot's secret."""
    bot, credentials = _bot(runtime, bot_id, ChannelKind.WEBHOOK)
    body = await request.body()
    try:
        msg_id = standard_webhooks.verify(
            str(credentials.get("secret", "")), dict(request.headers), body
        )
    except (standard_webhooks.SignatureError, ValueError) as exc:
        raise Unauthorized(f"bad webhook signature: {exc}") from exc
    try:
        inbound = GenericInbound.model_validate(_json(body))
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
