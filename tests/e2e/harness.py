"""An organization's owner using reengage as they would: the HTTP API with their key, their
users writing on the fake platform, and time passing on the manual clock (every timer fires
on its time, through the real scheduler)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reengage.adapters.clock import ManualClock
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram
from reengage.testing.time_travel import TimeTravel
from tests.conftest import CLUSTER_URL, REDIS_URL, fresh_database
from tests.factories import make_org


class Owner:
    def __init__(self, runtime: Runtime, client: TestClient, fake: Any, clock: ManualClock) -> None:
        self.runtime, self.client, self.fake, self.clock = runtime, client, fake, clock
        self.headers = {"Authorization": f"Bearer {make_org(runtime).api_key}"}
        self.travel = TimeTravel(runtime, clock)
        self.updates = itertools.count(1)

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        """An API call that must succeed (or answer `status`)."""
        r = self.client.request(method, path, json=body, headers=self.headers)
        assert r.status_code < 300 if status == 200 else r.status_code == status, r.text
        return r.json()

    def telegram_says(self, bot_id: int, chat: int, text: str) -> None:
        """A Telegram user writes; the update arrives on the webhook reengage registered."""
        if not self.fake.calls_to("setWebhook"):
            self.call("post", f"/v1/bots/{bot_id}/webhook")
        secret = str(self.fake.calls_to("setWebhook")[-1].params["secret_token"])
        r = self.client.post(
            f"/webhooks/telegram/{bot_id}",
            json=FakeTelegram.text_update(next(self.updates), chat, text),
            headers={"X-Telegram-Bot-Api-Secret-Token": secret},
        )
        assert r.status_code == 200, r.text

    def wait(self, delta: timedelta) -> None:
        self.travel.wait(delta)

    def conversation_log(self, *conversation_ids: int) -> list[str]:
        """The kinds of these conversations' logs, in order, without the flows' own steps."""
        kinds: list[str] = []
        for conv in sorted(conversation_ids):
            events = self.call("get", f"/v1/conversations/{conv}/events")
            kinds += [e["kind"] for e in events if not e["kind"].startswith("flow_")]
        return kinds


# Embedded (SQLite), PostgreSQL alone, and production mode: PostgreSQL with activity, timers,
# pacing (and the manager bot's conversation state) in Redis.
MODES = ["sqlite", "postgresql", "postgresql+redis"]
# The hot state on a Redis Cluster: for the tests that run there too.
CLUSTER = "postgresql+cluster"


def runtime_in_mode(request: pytest.FixtureRequest, tmp_path: Path, **settings: object) -> Runtime:
    """The runtime of a `MODES`-parametrized test, on the fake Telegram."""
    kind = str(request.param)
    url = fresh_database(kind.split("+")[0], request, tmp_path)
    extra: dict[str, object] = {}
    if kind.endswith("+redis"):
        request.getfixturevalue("redis_client")  # an empty test database, flushed after
        extra["redis_url"] = REDIS_URL
    elif kind.endswith("+cluster"):  # three shards on a local Redis Cluster, flushed after
        request.getfixturevalue("cluster_client")
        extra |= {"redis_url": CLUSTER_URL, "redis_cluster": True, "redis_shards": 3}
    build = request.getfixturevalue("make_runtime")
    telegram_url = request.getfixturevalue("telegram_url")
    whatsapp_url = request.getfixturevalue("whatsapp_url")
    runtime: Runtime = build(
        url,
        telegram_api_base=telegram_url,
        whatsapp_api_base=whatsapp_url,
        public_url="https://reengage.example.com",
        **(extra | settings),
    )
    return runtime
