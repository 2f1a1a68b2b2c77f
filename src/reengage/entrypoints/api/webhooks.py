"""Inbound webhooks: Telegram, WhatsApp Cloud API, and the generic signed webhook.

A bad signature is 401, an unknown bot 404, a malformed body 400 — and none changes anything.
A valid call is recorded (deduplicated by the platform's update/message id) and answered 200.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

import redis.asyncio
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.background import BackgroundTask

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
from reengage.adapters.redis.loop_calls import loop_calls
from reengage.domain.activity import (
    ActivityEvent,
    ChannelKind,
    ConversationStatus,
    EventType,
    Inbound,
)
from reengage.entrypoints.api.deps import RuntimeDep
from reengage.entrypoints.api.events import recorded_on_loop
from reengage.entrypoints.api.schemas import ErrorOut, Id, Text, UserId
from reengage.i18n import N_
from reengage.inbound.platform import Statuses, set_blocked
from reengage.ports import ConfigStamp
from reengage.runtime import Runtime
from reengage.services.errors import Forbidden, NotFound, ServiceError, Unauthorized
from reengage.services.record_activity import check_events
from reengage.services.tenant_cache import BotEntry

R = TypeVar("R")

webhooks_router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class BadPayload(ServiceError):
    status = 400
    code = "bad_payload"


@dataclass(frozen=True, slots=True)
class _Found:
    bot: BotEntry
    credentials: dict[str, Any]
    stamp: ConfigStamp | None


def _bot(runtime: Runtime, bot_id: int, kind: ChannelKind) -> _Found:
    bot, stamp = runtime.tenants.bot(bot_id)
    if bot is None or bot.channel is not kind:
        raise NotFound(N_("no {value} bot {bot_id}"), "bot_id", value=kind.value, bot_id=bot_id)
    return _Found(bot, runtime.credentials.of(bot.id, bot.credentials), stamp)


def _cached(
    runtime: Runtime, bot_id: int, kind: ChannelKind, ok: Callable[[_Found], bool]
) -> _Found | None:
    """The bot from memory alone, when the request's signature holds with its cached
    credentials: what is then recorded on the event loop is checked under the stamp they
    were cached with (a rotated secret sends the request the checked way). None otherwise."""
    cached = runtime.tenants.cached_bot(bot_id)
    if cached is None or cached[0].channel is not kind:
        return None
    bot, stamp = cached
    found = _Found(bot, runtime.credentials.of(bot.id, bot.credentials), stamp)
    return found if ok(found) else None


async def _still_current(client: redis.asyncio.Redis, found: _Found) -> bool:
    """Whether the credentials `found` was checked with are still the organization's (one
    read on the event loop), for what no record script checks (statuses alone)."""
    if found.stamp is None:
        return False
    calls = loop_calls(client)
    value = await (
        client.get(found.stamp.key) if calls is None else calls.call("GET", found.stamp.key)
    )
    return str(value or "") == found.stamp.value


async def _recorded(
    runtime: Runtime,
    client: redis.asyncio.Redis,
    found: _Found,
    events: list[ActivityEvent],
    now: datetime,
) -> bool:
    """Whether a request of a cached bot is recorded on the event loop: its events, or, when
    it has none (statuses alone), the check that its credentials are still current."""
    if not events:
        return await _still_current(client, found)
    return await recorded_on_loop(runtime, client, found.bot.org_id, events, now) is not None


def _read_or_none(read: Callable[[], R]) -> R | None:
    """What the body says, or None when it cannot be read (the checked way says why)."""
    try:
        return read()
    except BadUpdate:
        return None


def _checked(
    runtime: Runtime, bot_id: int, kind: ChannelKind, ok: Callable[[_Found], bool]
) -> _Found:
    """The bot, once `ok` accepts the request's signature with its current credentials (the
    cached ones are used only while the organization's stamp says they are current: a rotated
    secret is refused before anything is written)."""
    found = _bot(runtime, bot_id, kind)
    if not runtime.tenants.current(found.bot.org_id, found.stamp):
        found = _bot(runtime, bot_id, kind)
    if not ok(found):
        raise Unauthorized(N_("bad or missing {header}"), header=_SIGNATURE[kind])
    return found


_SIGNATURE = {
    ChannelKind.TELEGRAM: "X-Telegram-Bot-Api-Secret-Token",
    ChannelKind.WHATSAPP: "X-Hub-Signature-256",
    ChannelKind.WEBHOOK: "webhook-signature",
}


@contextmanager
def _reading() -> Iterator[None]:
    try:
        yield
    except BadUpdate as exc:
        raise BadPayload(str(exc)) from exc


async def _raw_body(request: Request) -> bytes:
    return await request.body()


# Read on the event loop; the sync routes then run in the thread pool.
RawBody = Annotated[bytes, Depends(_raw_body)]


def _recheck(
    runtime: Runtime, bot_id: int, kind: ChannelKind, ok: Callable[[_Found], bool]
) -> Callable[[], None]:
    """Run when the bot changed while the request was recorded: the signature must still hold
    with its current credentials."""

    def recheck() -> None:
        if not ok(_bot(runtime, bot_id, kind)):
            raise Unauthorized(N_("bad or missing {header}"), header=_SIGNATURE[kind])

    return recheck


def _secret_holds(secret: str | None) -> Callable[[_Found], bool]:
    """Whether a Telegram request's secret token is the bot's."""
    return lambda found: same_secret(secret, found.credentials.get("webhook_secret"))


def _signed(body: bytes, signature: str | None) -> Callable[[_Found], bool]:
    """Whether a WhatsApp request's `X-Hub-Signature-256` holds with the bot's app secret."""
    return lambda found: whatsapp_signature_ok(
        str(found.credentials.get("app_secret", "")), body, signature
    )


# --- Telegram -------------------------------------------------------------------------------


async def telegram_on_loop(
    runtime: Runtime, client: redis.asyncio.Redis, bot_id: int, body: bytes, secret: str | None
) -> Response | None:
    """The answer to a Telegram update of a cached bot whose secret holds, recorded on the
    event loop; None, with nothing applied, for what `telegram_webhook` must check."""
    found = _cached(runtime, bot_id, ChannelKind.TELEGRAM, _secret_holds(secret))
    if found is None:
        return None
    now = runtime.clock.now()
    update = _read_or_none(lambda: read_telegram_update(bot_id, json_object(body), now))
    if update is None or update.membership is not None:
        return None
    if not await _recorded(runtime, client, found, update.events, now):
        return None
    return _ok(runtime, found, update.callback_query_id)


@webhooks_router.post("/telegram/{bot_id}", responses={400: {}, 401: {}, 404: {}})
def telegram_webhook(bot_id: Id, request: Request, body: RawBody, runtime: RuntimeDep) -> Response:
    """Telegram `setWebhook` target; checks `X-Telegram-Bot-Api-Secret-Token`.

    Answers at once; a button press is acknowledged to Telegram after the response. (A cached
    bot's update is usually answered before the routing, by `telegram_on_loop`.)"""
    ok = _secret_holds(request.headers.get("x-telegram-bot-api-secret-token"))
    return _telegram(runtime, bot_id, body, ok, runtime.clock.now())


def _telegram(
    runtime: Runtime,
    bot_id: int,
    body: bytes,
    ok: Callable[[_Found], bool],
    now: datetime,
) -> Response:
    found = _checked(runtime, bot_id, ChannelKind.TELEGRAM, ok)
    bot = found.bot
    with _reading():
        update = read_telegram_update(bot.id, json_object(body), now)
    check_events(update.events)  # nothing is written unless all of the update can be
    if update.membership is not None:
        who = update.membership
        set_blocked(
            runtime.sessions, runtime.timers, bot.org_id, bot.id, who.user_id, who.blocked, now
        )
    if update.events:
        runtime.record(
            bot.org_id, update.events, _recheck(runtime, bot_id, ChannelKind.TELEGRAM, ok)
        )
    return _ok(runtime, found, update.callback_query_id)


def _ok(runtime: Runtime, found: _Found, query_id: str | None) -> Response:
    """Telegram's answer; a button press is acknowledged to Telegram after it (so the button
    stops spinning)."""
    token = found.credentials.get("token")
    task = None
    if query_id and token:
        base = runtime.settings.telegram_api_base
        task = BackgroundTask(answer_callback_query, token, query_id, base)
    return Response(b'{"ok":true}', media_type="application/json", background=task)


# --- WhatsApp -------------------------------------------------------------------------------


@webhooks_router.get(
    "/whatsapp/{bot_id}", response_class=PlainTextResponse, responses={403: {"model": ErrorOut}}
)
def whatsapp_verify(bot_id: Id, request: Request, runtime: RuntimeDep) -> PlainTextResponse:
    """Meta's verification handshake: echo `hub.challenge` when `hub.verify_token` matches."""
    credentials = _bot(runtime, bot_id, ChannelKind.WHATSAPP).credentials
    params = request.query_params
    if params.get("hub.mode") != "subscribe" or not same_secret(
        params.get("hub.verify_token"), credentials.get("verify_token")
    ):
        raise Forbidden(
            N_("verification failed: wrong hub.mode or hub.verify_token"), "hub.verify_token"
        )
    return PlainTextResponse(params.get("hub.challenge", ""))


async def whatsapp_on_loop(
    runtime: Runtime, client: redis.asyncio.Redis, bot_id: int, body: bytes, signature: str | None
) -> Response | None:
    """The answer to a WhatsApp notification of a cached bot whose signature holds, recorded
    on the event loop; None, with nothing applied, for what `whatsapp_webhook` must check."""
    found = _cached(runtime, bot_id, ChannelKind.WHATSAPP, _signed(body, signature))
    if found is None:
        return None
    now = runtime.clock.now()
    read = _read_or_none(lambda: read_whatsapp_notification(bot_id, json_object(body), now))
    if read is None:
        return None
    events, statuses = read
    if not await _recorded(runtime, client, found, events, now):
        return None
    if statuses:
        await runtime.statuses_on_loop(Statuses(bot_id, statuses, now))
    return Response(status_code=200)


@webhooks_router.post("/whatsapp/{bot_id}", responses={400: {}, 401: {}, 404: {}})
def whatsapp_webhook(bot_id: Id, request: Request, body: RawBody, runtime: RuntimeDep) -> Response:
    """WhatsApp Cloud API notifications; `X-Hub-Signature-256` is checked over the raw body.
    (A cached bot's notification is usually answered before the routing, by
    `whatsapp_on_loop`.)"""
    ok = _signed(body, request.headers.get("x-hub-signature-256"))
    return _whatsapp(runtime, bot_id, body, ok, runtime.clock.now())


def _whatsapp(
    runtime: Runtime, bot_id: int, body: bytes, ok: Callable[[_Found], bool], now: datetime
) -> Response:
    bot = _checked(runtime, bot_id, ChannelKind.WHATSAPP, ok).bot
    with _reading():
        events, statuses = read_whatsapp_notification(bot.id, json_object(body), now)
    if events:
        runtime.record(bot.org_id, events, _recheck(runtime, bot_id, ChannelKind.WHATSAPP, ok))
    if statuses:
        runtime.statuses(Statuses(bot.id, statuses, now))
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
    headers = dict(request.headers)
    verified: dict[str, str] = {}  # the message id once a signature holds, or the problem

    def ok(found: _Found) -> bool:
        try:
            secret = str(found.credentials.get("secret", ""))
            verified["id"] = standard_webhooks.verify(secret, headers, body)
        except (standard_webhooks.SignatureError, ValueError) as exc:
            verified["problem"] = str(exc)
            return False
        return True

    try:
        bot = _checked(runtime, bot_id, ChannelKind.WEBHOOK, ok).bot
    except Unauthorized as exc:
        raise Unauthorized(
            N_("bad webhook signature: {problem}"), problem=verified.get("problem", "")
        ) from exc
    msg_id = verified["id"]
    try:
        with _reading():
            inbound = GenericInbound.model_validate(json_object(body))
    except ValidationError as exc:
        raise BadPayload(N_("invalid body: {problem}"), problem=exc.errors()[0]["msg"]) from exc
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
        raise BadPayload(N_("unknown type {type!r}"), type=inbound.type) from exc
    said = Inbound(inbound.text) if kind is EventType.USER_MESSAGE else None
    runtime.record(
        bot.org_id,
        [ActivityEvent(f"gw:{msg_id}", kind, bot.id, inbound.user_id, now, inbound.status, said)],
        _recheck(runtime, bot_id, ChannelKind.WEBHOOK, ok),
    )
    return {"ok": True}
