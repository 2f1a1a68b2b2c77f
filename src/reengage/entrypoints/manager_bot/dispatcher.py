"""The manager bot's Dispatcher: access control, the feature routers, FSM storage."""

from __future__ import annotations

import asyncio

import structlog
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage

from reengage.adapters.redis.shards import connect_async
from reengage.config import Settings
from reengage.entrypoints.manager_bot.access import CallbackAccess, MessageAccess
from reengage.entrypoints.manager_bot.campaign_menus import recovery_router
from reengage.entrypoints.manager_bot.context import Manager
from reengage.entrypoints.manager_bot.start import start_router
from reengage.entrypoints.manager_bot.timeouts import timeouts_router
from reengage.runtime import Runtime

log = structlog.get_logger(__name__)


class ClusterStorage(RedisStorage):
    """aiogram's Redis storage on a cluster client (whose `aclose` takes no pool flag)."""

    async def close(self) -> None:
        await self.redis.aclose()


def storage_for(settings: Settings) -> BaseStorage:
    """Conversation state in Redis when configured (survives restarts, shared by replicas),
    in memory in embedded mode."""
    if settings.redis_url and settings.redis_cluster:  # one key per chat: any slot will do
        return ClusterStorage(connect_async(settings.redis_url, cluster=True))  # type: ignore[arg-type]
    if settings.redis_url:
        return RedisStorage.from_url(settings.redis_url)
    return MemoryStorage()


def build_dispatcher(runtime: Runtime, storage: BaseStorage | None = None) -> Dispatcher:
    """A Dispatcher serving the manager bot for this runtime."""
    manager = Manager(runtime)
    dp = Dispatcher(storage=storage or MemoryStorage())
    dp["manager"] = manager
    dp.message.outer_middleware(MessageAccess(manager))
    dp.callback_query.outer_middleware(CallbackAccess(manager))
    dp.include_routers(start_router(), recovery_router(), timeouts_router())
    return dp


def manager_bot(token: str, api_base: str | None = None) -> Bot:
    api = TelegramAPIServer.from_base(api_base) if api_base else PRODUCTION
    return Bot(token, session=AiohttpSession(api=api))


def run_polling(settings: Settings, runtime: Runtime) -> None:
    """Long-poll Telegram for the manager bot's updates until interrupted."""
    if settings.manager_bot_token is None:
        raise ValueError("REENGAGE_MANAGER_BOT_TOKEN is not set")
    bot = manager_bot(settings.manager_bot_token.get_secret_value(), settings.telegram_api_base)
    dp = build_dispatcher(runtime, storage_for(settings))
    log.info("manager.polling.started")
    asyncio.run(
        dp.start_polling(bot, allowed_updates=["message", "callback_query"], handle_signals=True)
    )
