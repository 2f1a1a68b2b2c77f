"""The manager bot by webhook: Telegram posts its updates to the API, which feeds them to the
same Dispatcher long polling uses. `setWebhook` carries a secret token; an update without it
(in `X-Telegram-Bot-Api-Secret-Token`) is refused before it is read."""

from __future__ import annotations

import asyncio

import structlog
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from reengage.adapters.channels.updates import BadUpdate, json_object, same_secret
from reengage.config import Settings
from reengage.entrypoints.manager_bot.dispatcher import build_dispatcher, manager_bot, storage_for
from reengage.i18n import N_
from reengage.runtime import Runtime
from reengage.services.errors import NotFound, ServiceError, Unauthorized

log = structlog.get_logger(__name__)

PATH = "/webhooks/manager-bot"
# What the manager bot handles; Telegram sends nothing else.
ALLOWED_UPDATES = ["message", "callback_query"]


class BadManagerUpdate(ServiceError):
    status = 400
    code = "bad_payload"


def webhook_url(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}{PATH}"


async def set_manager_webhook(settings: Settings) -> str:
    """Point Telegram at this API for the manager bot's updates; return the URL."""
    token, secret = settings.manager_bot_token, settings.manager_bot_webhook_secret
    if token is None or secret is None:
        raise ValueError("REENGAGE_MANAGER_BOT_TOKEN and REENGAGE_MANAGER_BOT_WEBHOOK_SECRET")
    bot = manager_bot(token.get_secret_value(), settings.telegram_api_base)
    url = webhook_url(settings)
    try:
        await bot.set_webhook(
            url, secret_token=secret.get_secret_value(), allowed_updates=ALLOWED_UPDATES
        )
    finally:
        await bot.session.close()
    return url


class ManagerWebhook:
    """The manager bot and its Dispatcher inside an API process, built on the first update
    (on the serving loop: the bot's HTTP session belongs to it)."""

    def __init__(self, runtime: Runtime, token: str, secret: str) -> None:
        self._runtime, self._token, self._secret = runtime, token, secret
        self._served: tuple[Bot, Dispatcher] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def configured(cls, runtime: Runtime) -> ManagerWebhook | None:
        settings = runtime.settings
        token, secret = settings.manager_bot_token, settings.manager_bot_webhook_secret
        if token is None or secret is None:
            return None
        return cls(runtime, token.get_secret_value(), secret.get_secret_value())

    def accepts(self, secret: str | None) -> bool:
        return same_secret(secret, self._secret)

    async def feed(self, data: dict[str, object]) -> None:
        async with self._lock:
            if self._served is None:
                settings = self._runtime.settings
                bot = manager_bot(self._token, settings.telegram_api_base)
                self._served = bot, build_dispatcher(self._runtime, storage_for(settings))
        bot, dp = self._served
        try:
            update = Update.model_validate(data, context={"bot": bot})
        except ValidationError as exc:
            raise BadManagerUpdate(N_("body is not a Telegram update")) from exc
        await dp.feed_update(bot, update)

    async def close(self) -> None:
        if self._served is not None:
            bot, dp = self._served
            self._served = None
            await bot.session.close()
            await dp.storage.close()


manager_webhook_router = APIRouter(tags=["webhooks"])


@manager_webhook_router.post(PATH, responses={400: {}, 401: {}, 404: {}})
async def manager_bot_update(request: Request) -> Response:
    """Telegram `setWebhook` target of the manager bot (`reengage manager-bot --webhook`);
    checks `X-Telegram-Bot-Api-Secret-Token`, then answers once the update is handled."""
    served: ManagerWebhook | None = request.app.state.manager_bot
    if served is None:
        raise NotFound(N_("the manager bot does not run by webhook here"))
    if not served.accepts(request.headers.get("x-telegram-bot-api-secret-token")):
        raise Unauthorized(N_("bad or missing X-Telegram-Bot-Api-Secret-Token"))
    try:
        data = json_object(await request.body())
    except BadUpdate as exc:
        raise BadManagerUpdate(str(exc)) from exc
    await served.feed(data)
    return Response(status_code=200)
