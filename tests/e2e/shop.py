"""The shop owner's side of the recovery and manager-bot tests: the HTTP API, the Telegram
fake, and a scheduler on a manual clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

from fastapi.testclient import TestClient

from reengage.adapters.clock import ManualClock
from reengage.runtime import Runtime
from reengage.testing.whatsapp import FakeWhatsApp
from tests.channel_harness import TG_TOKEN, WA_PHONE, WA_TOKEN
from tests.e2e.harness import Owner

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


class Shop(Owner):
    CHANNEL: ClassVar[dict[str, Any]] = {"channel": "telegram", "credentials": {"token": TG_TOKEN}}

    def __init__(self, runtime: Runtime, client: TestClient, fake: Any, clock: ManualClock) -> None:
        super().__init__(runtime, client, fake, clock)
        self.bot = self.call("post", "/v1/bots", {"name": "Loja", **self.CHANNEL})["id"]

    def launch(self, campaign: dict[str, Any] = CAMPAIGN) -> None:
        self.call("put", f"/v1/bots/{self.bot}/campaign", campaign)
        self.call("post", f"/v1/bots/{self.bot}/campaign/publish")
        self.call("put", f"/v1/bots/{self.bot}/campaign/enabled", {"enabled": True})

    def says(self, user: str, text: str) -> None:
        self.telegram_says(self.bot, int(user), text)

    def event(self, user: str, kind: str = "message.user") -> None:
        self.call(
            "post",
            "/v1/events",
            {"id": f"e{next(self.updates)}", "type": kind, "bot_id": self.bot, "user_id": user},
        )

    def heard(self, user: str) -> list[str]:
        return [m.text or m.caption or "" for m in self.fake.sent_messages(int(user))]

    def episodes(self) -> list[dict[str, Any]]:
        return list(self.call("get", "/v1/episodes", None))

    def flow(self, key: str, definition: dict[str, Any], entry: bool = False) -> None:
        self.call("put", f"/v1/bots/{self.bot}/flows/{key}", definition)
        if entry:
            self.call("put", f"/v1/bots/{self.bot}/entry-flow", {"entry_flow": key})

    def log(self, user: str) -> list[str]:
        """The kinds of the user's conversation log (all their conversations, in order)."""
        conversations = self.call("get", "/v1/conversations")
        return self.conversation_log(*[c["id"] for c in conversations if c["user_id"] == user])


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
        n = next(self.updates)
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

    def post_raw(self, payload: dict[str, Any]) -> None:
        """A webhook payload as Meta posts it (a status update, say), signed."""
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
