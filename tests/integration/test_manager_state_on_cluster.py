"""The manager bot's conversation state on a Redis Cluster."""

from __future__ import annotations

import asyncio

from aiogram.fsm.storage.base import StorageKey

from reengage.adapters.redis.shards import SyncClient
from reengage.config import Settings
from reengage.entrypoints.manager_bot.dispatcher import ClusterStorage, storage_for
from tests.conftest import CLUSTER_URL


def test_the_manager_bots_state_lives_on_the_cluster(cluster_client: SyncClient) -> None:
    async def walk() -> None:
        storage = storage_for(Settings(redis_url=CLUSTER_URL, redis_cluster=True))
        assert isinstance(storage, ClusterStorage)
        try:
            for chat in range(6):  # chats whose keys fall on different masters
                key = StorageKey(bot_id=1, chat_id=chat, user_id=chat)
                await storage.set_state(key, "Timeouts:bot")
                await storage.set_data(key, {"bot": chat})
            for chat in range(6):
                key = StorageKey(bot_id=1, chat_id=chat, user_id=chat)
                assert await storage.get_state(key) == "Timeouts:bot"
                assert await storage.get_data(key) == {"bot": chat}
        finally:
            await storage.close()

    asyncio.run(walk())
    assert len(list(cluster_client.scan_iter("fsm:*"))) == 12
