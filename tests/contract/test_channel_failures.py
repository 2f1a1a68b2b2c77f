"""Every adapter maps every answer to an outcome: a platform (or the gateway in front of it)
that answers an HTML error page, a 5xx, something unreadable, nothing at all, or cannot be
reached. Nothing escapes; what surely did not get through is retryable; what may have is
ambiguous."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from reengage.adapters.channels.telegram import TelegramChannel
from reengage.adapters.channels.webhook import WebhookChannel
from reengage.adapters.channels.whatsapp import WhatsAppChannel
from reengage.adapters.clock import ManualClock
from reengage.adapters.pacing import InMemoryPacer
from reengage.domain.outbound import Failed, MessageKind, OutboundMessage, SendContext, Sent
from reengage.ports import Channel
from reengage.testing.server import RunningServer, serve

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPEN = SendContext(NOW, window_expires_at=NOW + timedelta(hours=1))
TEXT = OutboundMessage(MessageKind.TEXT, "Oi")


@dataclass
class Broken:
    """A platform front that answers what it is told to."""

    mode: str = "html502"

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            await request.body()
            if self.mode == "html502":
                page = "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
                return Response(page, status_code=502, media_type="text/html")
            if self.mode == "json500":
                error = {"ok": False, "error_code": 500, "description": "Internal Server Error"}
                return JSONResponse(error | {"error": {"code": 2}}, status_code=500)
            if self.mode == "garbage200":
                return PlainTextResponse("all good, probably")
            if self.mode == "shape200":
                return JSONResponse({"ok": True, "result": {"nope": 1}, "messages": []})
            await asyncio.sleep(3)  # hang: the request arrived, no answer in time
            return JSONResponse({})

        return Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])


@pytest.fixture(scope="module")
def broken() -> Iterator[tuple[Broken, RunningServer]]:
    platform = Broken()
    with serve(platform.app()) as server:
        yield platform, server


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


Make = Callable[[str], Channel]
CHANNELS: dict[str, Make] = {
    "telegram": lambda base: TelegramChannel(
        "123:abc", bot_key="1", clock=ManualClock(), pacer=InMemoryPacer(), api_base=base, timeout=1
    ),
    "whatsapp": lambda base: WhatsAppChannel(
        "1065", "token", pacer=InMemoryPacer(), api_base=base, timeout=1
    ),
    "webhook": lambda base: WebhookChannel(
        f"{base}/hook", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", timeout=1
    ),
}


@pytest.fixture(params=list(CHANNELS))
def make(request: pytest.FixtureRequest) -> Make:
    return CHANNELS[request.param]


Counted = Callable[[str], float]


@pytest.fixture
def counted(request: pytest.FixtureRequest) -> Counted:
    """How many platform errors of a kind this test's channel counted since it began."""
    channel = str(request.node.callspec.params["make"])

    def value(kind: str) -> float:
        labels = {"channel": channel, "kind": kind}
        return REGISTRY.get_sample_value("reengage_platform_errors_total", labels) or 0.0

    before = {k: value(k) for k in ("server_error", "timeout", "network")}
    return lambda kind: value(kind) - before[kind]


@pytest.mark.parametrize("mode", ["html502", "json500"])
def test_a_5xx_or_a_gateway_page_is_retryable(
    broken: tuple[Broken, RunningServer], make: Make, mode: str, counted: Counted
) -> None:
    platform, server = broken
    platform.mode = mode
    outcome = make(server.url).send("777", TEXT, OPEN)
    assert isinstance(outcome, Failed)
    assert (outcome.reason, outcome.retryable) == ("server_error", True)
    assert counted("server_error") == 1


def test_no_answer_in_time_is_ambiguous(
    broken: tuple[Broken, RunningServer], make: Make, counted: Counted
) -> None:
    platform, server = broken
    platform.mode = "hang"
    outcome = make(server.url).send("777", TEXT, OPEN)
    assert isinstance(outcome, Failed)
    assert (outcome.reason, outcome.retryable) == ("ambiguous", False)
    assert counted("timeout") == 1


def test_a_platform_that_cannot_be_reached_is_retryable(make: Make, counted: Counted) -> None:
    outcome = make(closed_port()).send("777", TEXT, OPEN)
    assert isinstance(outcome, Failed)
    assert outcome.retryable
    assert outcome.reason in ("connect_failed", "unreachable")
    assert counted("network") == 1


@pytest.mark.parametrize("mode", ["garbage200", "shape200"])
def test_a_success_that_cannot_be_read_is_ambiguous(
    broken: tuple[Broken, RunningServer], make: Make, mode: str, request: pytest.FixtureRequest
) -> None:
    platform, server = broken
    platform.mode = mode
    outcome = make(server.url).send("777", TEXT, OPEN)
    if "webhook" in request.node.name:  # any 2xx is an acceptance for a generic receiver
        assert isinstance(outcome, Sent)
    else:
        assert isinstance(outcome, Failed)
        assert (outcome.reason, outcome.retryable) == ("ambiguous", False)
