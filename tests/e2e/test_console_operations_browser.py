"""The console's operating pages in real headless Chromium: episodes and deliveries, a
contact's timeline and stopping their episode, timeouts edited and explained, the handoff
inbox, a WhatsApp number added; on a desktop and on a phone's width. A screenshot of each
page is saved under the test's tmp dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from reengage.adapters.clock import ManualClock
from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.testing.server import serve
from reengage.testing.telegram import FakeTelegram
from reengage.testing.time_travel import TimeTravel
from reengage.testing.whatsapp import FakeWhatsApp
from tests.channel_harness import TG_TOKEN, WA_PHONE, WA_TOKEN
from tests.e2e.console_client import PASSWORD, make_user
from tests.e2e.shop import CAMPAIGN, START
from tests.e2e.test_console_browser import browser, offline, shot
from tests.factories import make_org

__all__ = ["browser"]  # the module's Chromium, shared


@dataclass
class Served:
    url: str
    api: httpx.Client
    travel: TimeTravel
    bot: int

    def call(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.api.request(method, path, json=body)
        assert answer.status_code < 300, answer.text
        return answer.json()


@pytest.fixture
def served(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    telegram_url: str,
    whatsapp_url: str,
    fake_telegram: FakeTelegram,
    fake_whatsapp: FakeWhatsApp,
    clock: ManualClock,
) -> Iterator[Served]:
    clock.set(START)
    runtime = make_runtime(db_url, telegram_api_base=telegram_url, whatsapp_api_base=whatsapp_url)
    org = make_org(runtime, "Loja Acme")
    make_user(runtime, org.org_id, "owner@acme.example")
    with serve(create_app(runtime)) as server:
        headers = {"Authorization": f"Bearer {org.api_key}"}
        with httpx.Client(base_url=server.url, headers=headers) as api:
            bot = api.post(
                "/v1/bots",
                json={"name": "Loja", "channel": "telegram", "credentials": {"token": TG_TOKEN}},
            ).json()["id"]
            yield Served(server.url, api, TimeTravel(runtime, clock), bot)


def prepare(s: Served) -> None:
    """A campaign whose first step reached contact 101, and contact 202 with an agent."""
    s.call("put", f"/v1/bots/{s.bot}/campaign", CAMPAIGN)
    s.call("post", f"/v1/bots/{s.bot}/campaign/publish")
    s.call("put", f"/v1/bots/{s.bot}/campaign/enabled", {"enabled": True})
    events = [
        {"id": "e1", "type": "message.user", "bot_id": s.bot, "user_id": "101"},
        {"id": "e2", "type": "message.user", "bot_id": s.bot, "user_id": "202"},
        {
            "id": "e3",
            "type": "conversation.status",
            "bot_id": s.bot,
            "user_id": "202",
            "status": "handoff",
        },
    ]
    s.call("post", "/v1/events", {"events": events})
    s.travel.wait(timedelta(minutes=41))


def fits_a_phone(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, page.url
    page.set_viewport_size({"width": 1280, "height": 800})


def test_an_operator_runs_episodes_timeouts_and_the_handoff_inbox_in_chromium(
    browser: Browser,
    served: Served,
    fake_telegram: FakeTelegram,
    tmp_path: Path,
) -> None:
    prepare(served)
    assert [m.text for m in fake_telegram.sent_messages(101)][:1] == [
        "Ei, esqueceu algo no carrinho?"
    ]
    folder = tmp_path / "screenshots"
    folder.mkdir()
    base = served.url
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    refused = offline(page, base)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/console/login")
    page.fill("input[name=email]", "owner@acme.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Visão geral")

    # Episodes, filtered; the contact's page; their episode stopped.
    page.click("nav >> text=Episódios")
    page.select_option("select[name=status]", "running")
    page.click("form.filters button")
    expect(page.locator("table.episodes tbody tr")).to_have_count(1)  # 202 is with a human
    shot(page, folder, "11-episodes")
    fits_a_phone(page)
    page.click("table.episodes >> text=101")
    expect(page.locator("h1")).to_have_text("Contato 101 em Loja")
    expect(page.locator("ol.timeline")).to_contain_text("recovery sent")
    shot(page, folder, "12-contact")
    page.click("text=Parar este episódio")
    expect(page.locator(".notice")).to_contain_text("Episódio parado")
    shot(page, folder, "13-contact-stopped")
    fits_a_phone(page)
    page.click("nav >> text=Entregas")
    expect(page.locator("table.deliveries tbody tr")).to_have_count(2)
    shot(page, folder, "14-deliveries")

    # Timeouts: the organization's level set in the form, then one conversation explained.
    page.click("nav >> text=Tempos de espera")
    page.click("ul.levels-tree >> text=organização")
    page.select_option("select[name=enabled]", "true")
    page.fill("input[name=timeout]", "30m")
    page.fill("textarea[name=reminders]", "10m | Ainda por aí?")
    page.select_option("select[name=action]", "close")
    shot(page, folder, "15-timeout-edit")
    page.click("form.policy button[type=submit]")
    expect(page.locator("tr[data-scope=organization]")).to_contain_text("Ainda por aí?")
    shot(page, folder, "16-timeouts")
    page.click("nav >> text=Episódios")
    page.click("table.episodes >> text=101")
    page.click("text=Explicar o tempo de espera")
    expect(page.locator("tr[data-field=timeout]")).to_contain_text("organização")
    shot(page, folder, "17-explain")
    fits_a_phone(page)

    # The handoff inbox: take, reply, close.
    page.click("nav >> text=Atendimento humano")
    card = page.locator("section[data-conversation]")
    expect(card).to_have_count(1)
    card.locator("text=Assumir").click()
    expect(page.locator("[data-agent]")).to_have_text("owner@acme.example")
    page.fill("textarea[name=text]", "Oi! Sou a Ana.")
    page.click("section[data-conversation] button:has-text('Responder')")
    served.travel.drain()
    assert [m.text for m in fake_telegram.sent_messages(202)] == ["Oi! Sou a Ana."]
    shot(page, folder, "18-handoff")
    fits_a_phone(page)
    page.click("text=Encerrar")
    expect(page.locator("main")).to_contain_text("Ninguém esperando um humano.")

    # A WhatsApp number, checked against the Graph API (the fake), with its live status.
    page.click("nav >> text=Bots")
    form = page.locator("form[action='/console/bots/whatsapp']")
    form.locator("input[name=name]").fill("Loja WA")
    form.locator("input[name=phone_number_id]").fill(WA_PHONE)
    form.locator("input[name=access_token]").fill(WA_TOKEN)
    form.locator("input[name=app_secret]").fill("app-secret-for-tests")
    form.locator("button").click()
    expect(page.locator("h1")).to_have_text("Bot Loja WA")
    expect(page.locator("[data-status=ok]")).to_contain_text("+1 555-")
    shot(page, folder, "19-whatsapp-bot")

    assert refused == []
    assert errors == []
    assert len(list(folder.iterdir())) == 9
    page.close()
