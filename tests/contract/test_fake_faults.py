"""The platform fault switch in front of the fake Bot API: HTML 502 pages and hung requests
for a window, and what a real aiogram client sees of them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import ClientDecodeError, TelegramNetworkError

from reengage.testing.faults import telegram_platform
from reengage.testing.server import RunningServer, serve
from reengage.testing.telegram import FakeTelegram

TOKEN = "123456:AAH-fake_token"


@pytest.fixture
def platform() -> Iterator[tuple[RunningServer, httpx.Client]]:
    with (
        serve(telegram_platform(FakeTelegram())) as server,
        httpx.Client(base_url=server.url) as control,
    ):
        yield server, control


def send(server: RunningServer, text: str, timeout: float = 5.0) -> Any:
    async def main() -> Any:
        api = TelegramAPIServer.from_base(server.url)
        bot = Bot(TOKEN, session=AiohttpSession(api=api, timeout=timeout))
        try:
            return await bot.send_message(42, text)
        finally:
            await bot.session.close()

    return asyncio.run(main())


def test_messages_pass_through_and_are_read_back(
    platform: tuple[RunningServer, httpx.Client],
) -> None:
    server, control = platform
    assert send(server, "hello").text == "hello"
    assert control.get("/_control/sent").json() == [
        {"bot_id": 123456, "chat_id": 42, "text": "hello"}
    ]
    [request] = control.get("/_control/requests").json()
    assert (request["path"], request["outcome"]) == (f"/bot{TOKEN}/sendMessage", 200)
    assert request["client_port"] > 0
    assert request["started"] <= request["ended"]


def test_a_502_window_answers_html_that_aiogram_cannot_decode(
    platform: tuple[RunningServer, httpx.Client],
) -> None:
    server, control = platform
    control.post("/_control/fault", json={"mode": "html_502", "seconds": 30}).raise_for_status()
    raw = httpx.post(f"{server.url}/bot{TOKEN}/getMe")
    assert raw.status_code == 502
    assert raw.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in raw.text
    # Not a TelegramAPIError: the channel adapter has to expect it apart.
    with pytest.raises(ClientDecodeError):
        send(server, "lost in the gateway")
    assert control.get("/_control/sent").json() == []
    assert len(control.get("/_control/refused").json()["faulted"]) == 2
    control.post("/_control/fault", json={"mode": "none"}).raise_for_status()
    assert send(server, "back").text == "back"


def test_a_hang_window_never_answers_until_the_client_gives_up(
    platform: tuple[RunningServer, httpx.Client],
) -> None:
    server, control = platform
    control.post("/_control/fault", json={"mode": "hang", "seconds": 30}).raise_for_status()
    with pytest.raises(TelegramNetworkError):
        send(server, "into the void", timeout=0.5)
    for _ in range(50):  # the fake notices the disconnection
        if control.get("/_control/open").json()["open"] == 0:
            break
        time.sleep(0.02)
    [request] = control.get("/_control/requests").json()
    assert request["outcome"] == "hung"
    assert control.get("/_control/sent").json() == []
