"""The shop owner's side of the recovery and manager-bot tests: the HTTP API, the Telegram
fake, and a scheduler on a manual clock."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient

from reengage.adapters.clock import ManualClock
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram
from reengage.testing.whatsapp import FakeWhatsApp
from reengage.timers.executors import InlineExecutor
from reengage.timers.scheduler import Scheduler
from tests.channel_harness import TG_TOKEN, WA_PHONE, WA_TOKEN
from tests.conftest import REDIS_URL, fresh_database
from tests.factories import make_org

WA_APP_SECRET = "app-secret-for-tests"

# Monday 2026-01-05 12:00 UTC = 09:00 in São Paulo.
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


CAMPAIGN = {
    "time_zone": "America/Sao_Paulo",
    "threshold": "10m",
    "steps": [
        {
            "schedule": "30m",
            "blocks": [
                {"kind": "text", "text": "Ei, esqueceu algo no carrinho?"},
                {
                    "kind": "photo",
                    "url": "https://cdn.example.com/promo.png",
                    "caption": "10% off",
                    "delay": "5s",
                },
            ],
        },
        {"schedule": "amanhã 09:00", "blocks": [{"kind": "text", "text": "Última chance!"}]},
    ],
}


class Shop:
    CHANNEL: ClassVar[dict[str, Any]] = {"channel": "telegram", "credentials": {"token": TG_TOKEN}}

    def __init__(self, runtime: Runtime, client: TestClient, fake: Any, clock: ManualClock) -> None:
        self.runtime, self.client, self.fake, self.clock = runtime, client, fake, clock
        org = make_org(runtime)
        self.headers = {"Authorization": f"Bearer {org.api_key}"}
        self.bot = self.call("post", "/v1/bots", {"name": "Loja", **self.CHANNEL})["id"]
        self.events = itertools.count(1)
        self.scheduler = Scheduler(
            sessions=runtime.sessions,
            store=runtime.timers,
            executor=InlineExecutor(runtime),
            registry=runtime.registry,
            clock=clock,
            activity=runtime.activity,
        )

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = self.client.request(method, path, json=body, headers=self.headers)
        assert r.status_code < 300 if status == 200 else r.status_code == status, r.text
        return r.json()

    def launch(self, campaign: dict[str, Any] = CAMPAIGN) -> None:
        self.call("put", f"/v1/bots/{self.bot}/campaign", campaign)
        self.call("post", f"/v1/bots/{self.bot}/campaign/publish")
        self.call("put", f"/v1/bots/{self.bot}/campaign/enabled", {"enabled": True})

    def says(self, user: str, text: str) -> None:
        """The user writes through Telegram (the webhook reengage registered)."""
        if not self.fake.calls_to("setWebhook"):
            self.call("post", f"/v1/bots/{self.bot}/webhook")
        secret = str(self.fake.calls_to("setWebhook")[-1].params["secret_token"])
        update = FakeTelegram.text_update(next(self.events), int(user), text)
        r = self.client.post(
            f"/webhooks/telegram/{self.bot}",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": secret},
        )
        assert r.status_code == 200, r.text

    def event(self, user: str, kind: str = "message.user") -> None:
        self.call(
            "post",
            "/v1/events",
            {"id": f"e{next(self.events)}", "type": kind, "bot_id": self.bot, "user_id": user},
        )

    def wait(self, delta: timedelta) -> None:
        """Let `delta` pass, jumping from one due timer to the next."""
        end = self.clock.now() + delta
        while True:
            while self.scheduler.run_once():
                pass
            due = self.runtime.timers.next_due()
            now = self.clock.now()
            if now >= end:
                return
            self.clock.set(min(end, max(due or end, now + timedelta(seconds=1))))

    def heard(self, user: str) -> list[str]:
        return [m.text or m.caption or "" for m in self.fake.sent_messages(int(user))]

    def episodes(self) -> list[dict[str, Any]]:
        return list(self.call("get", "/v1/episodes", None))

    def flow(self, key: str, definition: dict[str, Any], entry: bool = False) -> None:
        self.call("put", f"/v1/bots/{self.bot}/flows/{key}", definition)
        if entry:
            self.call("put", f"/v1/bots/{self.bot}/entry-flow", {"entry_flow": key})

    def log(self, user: str) -> list[str]:
        """The kinds of the user's conversation log (all their conversations, in order),
        without the flow's own steps."""
        conversations = [c for c in self.call("get", "/v1/conversations") if c["user_id"] == user]
        kinds: list[str] = []
        for conv in sorted(conversations, key=lambda c: c["id"]):
            events = self.call("get", f"/v1/conversations/{conv['id']}/events")
            kinds += [e["kind"] for e in events if not e["kind"].startswith("flow_")]
        return kinds


class WhatsAppShop(Shop):
    """The shop on a WhatsApp Cloud API number: users write through Meta-shaped webhooks,
    signed with the app secret, on the real endpoint."""

    CHANNEL: ClassVar[dict[str, Any]] = {
        "channel": "whatsapp",
        "credentials": {
            "phone_number_id": WA_PHONE,
            "access_token": WA_TOKEN,
            "app_secret": WA_APP_SECRET,
            "verify_token": "verify-me",
        },
    }

    def post(self, user: str, message: dict[str, Any], name: str = "Maria Silva") -> None:
        """One user message as Meta delivers it (`message`: its type and content)."""
        n = next(self.events)
        full = {"id": f"wamid.in{n}", "timestamp": str(int(self.clock.now().timestamp()))}
        payload = FakeWhatsApp.inbound_payload(
            WA_PHONE, "15550001234", user, full | message, profile_name=name
        )
        body = json.dumps(payload).encode()
        headers = {
            "X-Hub-Signature-256": FakeWhatsApp.signature(WA_APP_SECRET, body),
            "Content-Type": "application/json",
        }
        r = self.client.post(f"/webhooks/whatsapp/{self.bot}", content=body, headers=headers)
        assert r.status_code == 200, r.text

    def says(self, user: str, text: str) -> None:
        self.post(user, {"type": "text", "text": {"body": text}})

    def taps(self, user: str, title: str) -> None:
        """The user taps a reply button."""
        reply = {"id": f"btn-{title}", "title": title}
        self.post(
            user,
            {"type": "interactive", "interactive": {"type": "button_reply", "button_reply": reply}},
        )

    def heard(self, user: str) -> list[str]:
        out = []
        for m in self.fake.sent_messages(user):
            if m.type == "template":
                params = m.body["template"].get("components", [{}])[0].get("parameters", [])
                out.append(
                    f"[{m.body['template']['name']}: {', '.join(p['text'] for p in params)}]"
                )
            else:
                out.append(m.text or "")
        return out


# Embedded (SQLite), PostgreSQL alone, and production mode: PostgreSQL with activity, timers,
# pacing (and the manager bot's conversation state) in Redis.
MODES = ["sqlite", "postgresql", "postgresql+redis"]


def shop_runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    """The runtime of a `MODES`-parametrized test, on the fake Telegram."""
    kind = str(request.param)
    url = fresh_database(kind.split("+")[0], request, tmp_path)
    extra = {}
    if kind.endswith("+redis"):
        request.getfixturevalue("redis_client")  # an empty test database, flushed after
        extra["redis_url"] = REDIS_URL
    build = request.getfixturevalue("make_runtime")
    telegram_url = request.getfixturevalue("telegram_url")
    whatsapp_url = request.getfixturevalue("whatsapp_url")
    runtime: Runtime = build(
        url,
        telegram_api_base=telegram_url,
        whatsapp_api_base=whatsapp_url,
        public_url="https://reengage.example.com",
        **extra,
    )
    return runtime
