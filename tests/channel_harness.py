"""Fake platforms on 127.0.0.1 and the channel adapters pointed at them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import standardwebhooks
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reengage.adapters.channels import standard_webhooks
from reengage.adapters.channels.factory import close_connections
from reengage.testing.server import RunningServer, serve
from reengage.testing.telegram import FakeTelegram
from reengage.testing.whatsapp import FakeWhatsApp

TG_TOKEN = "123456:TEST-token"
WA_TOKEN = "EAAG-test-token"
WA_PHONE = "106540352242922"


@dataclass
class WebhookReceiver:
    """A platform that receives reengage's generic webhooks and checks them with the
    reference Standard Webhooks library."""

    secret: str = field(default_factory=standard_webhooks.new_secret)
    received: list[dict[str, Any]] = field(default_factory=list)
    answer_status: int = 200

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            verifier = standardwebhooks.Webhook(self.secret)
            try:
                verifier.verify(body, dict(request.headers))
            except standardwebhooks.WebhookVerificationError:
                return Response(status_code=401)
            if self.answer_status != 200:
                return Response(status_code=self.answer_status)
            payload = json.loads(body)
            self.received.append(payload)
            return JSONResponse({"message_id": f"ext-{len(self.received)}"})

        return Starlette(routes=[Route("/hook", endpoint, methods=["POST"])])


@pytest.fixture(scope="session")
def fake_telegram_server() -> Iterator[tuple[FakeTelegram, RunningServer]]:
    fake = FakeTelegram()
    with serve(fake.app) as server:
        yield fake, server


@pytest.fixture
def fake_telegram(
    fake_telegram_server: tuple[FakeTelegram, RunningServer],
) -> Iterator[FakeTelegram]:
    fake, _ = fake_telegram_server
    fake.reset()
    yield fake
    close_connections()


@pytest.fixture
def telegram_url(fake_telegram_server: tuple[FakeTelegram, RunningServer]) -> str:
    return fake_telegram_server[1].url


@pytest.fixture(scope="session")
def fake_whatsapp_server() -> Iterator[tuple[FakeWhatsApp, RunningServer]]:
    fake = FakeWhatsApp(access_tokens=[WA_TOKEN])
    with serve(fake.app) as server:
        yield fake, server


@pytest.fixture
def fake_whatsapp(
    fake_whatsapp_server: tuple[FakeWhatsApp, RunningServer],
) -> Iterator[FakeWhatsApp]:
    fake, _ = fake_whatsapp_server
    fake.reset()
    yield fake
    close_connections()


@pytest.fixture
def whatsapp_url(fake_whatsapp_server: tuple[FakeWhatsApp, RunningServer]) -> str:
    return fake_whatsapp_server[1].url


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[WebhookReceiver, str]]:
    receiver = WebhookReceiver()
    with serve(receiver.app()) as server:
        yield receiver, f"{server.url}/hook"
