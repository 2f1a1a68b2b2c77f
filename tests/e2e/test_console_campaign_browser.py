"""A recovery campaign built in the console, in real headless Chromium (Debian's, driven by
Playwright): an owner logs in, adds a Telegram bot checked against the fake Bot API, builds a
two-step campaign with an uploaded photo, sees the preview, publishes and enables it; a contact
goes quiet (time passes on the manual clock, through the real scheduler) and receives the
blocks at the fake Telegram; the results page shows the sends and, once the contact answers,
the return. A screenshot of each page is saved in the folder the test prints."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from reengage.adapters.clock import ManualClock
from reengage.entrypoints.api.app import create_app
from reengage.entrypoints.console.texts import text
from reengage.runtime import Runtime
from reengage.testing.server import serve
from reengage.testing.telegram import FakeTelegram
from reengage.testing.time_travel import TimeTravel
from tests.e2e.console_client import PASSWORD, make_user
from tests.e2e.test_console_browser import browser, offline, shot
from tests.factories import make_org

__all__ = ["browser"]  # the module's Chromium, shared

TOKEN = "555777:campaign-browser-token"
CHAT = 4242
# Monday 2026-01-05 12:00 UTC = 09:00 in São Paulo.
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201a5d4f3e80000000049454e44ae426082"
)


class Story:
    def __init__(self, runtime: Runtime, clock: ManualClock, url: str) -> None:
        self.runtime, self.url = runtime, url
        self.travel = TimeTravel(runtime, clock)
        self.updates = itertools.count(1)

    def contact_says(self, fake: FakeTelegram, bot_id: int, text: str) -> None:
        """The contact writes; Telegram posts the update to the webhook the console set."""
        secret = str(fake.calls_to("setWebhook")[-1].params["secret_token"])
        answer = httpx.post(
            f"{self.url}/webhooks/telegram/{bot_id}",
            json=FakeTelegram.text_update(next(self.updates), CHAT, text),
            headers={"X-Telegram-Bot-Api-Secret-Token": secret},
        )
        assert answer.status_code == 200, answer.text


@pytest.fixture
def story(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    telegram_url: str,
    fake_telegram: FakeTelegram,
    clock: ManualClock,
) -> Iterator[Story]:
    clock.set(START)
    # Telegram takes only HTTPS webhooks: the public URL a proxy would answer.
    runtime = make_runtime(pg_db, telegram_api_base=telegram_url, public_url="https://shop.example")
    org = make_org(runtime, "Loja Acme")
    make_user(runtime, org.org_id, "owner@acme.example")
    with serve(create_app(runtime)) as server:
        yield Story(runtime, clock, server.url)


def add_block(page: Page, step: int, kind: str, **fields: str) -> None:
    form = page.locator(f"[data-step='{step}'] details.add-block")
    form.locator("summary").click()
    form.locator("select[name=kind]").select_option(kind)
    for name, value in fields.items():
        if name == "file":
            form.locator("input[name=file]").set_input_files(value)
        else:
            form.locator(f"[name={name}]").fill(value)
    form.locator("button[type=submit]").click()


def test_an_owner_builds_a_campaign_and_a_quiet_contact_receives_it(
    browser: Browser, story: Story, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    print(f"screenshots: {folder}")  # noqa: T201 - where to look (pytest -s)
    photo = tmp_path / "promo.png"
    photo.write_bytes(PNG)
    url = story.url
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    refused = offline(page, url)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{url}/console/login")
    page.fill("input[name=email]", "owner@acme.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Visão geral")

    page.click("nav >> text=Bots")
    page.fill("input[name=name]", "Loja")
    page.fill("input[name=token]", TOKEN)
    page.click("main button[type=submit]")
    expect(page.locator("[data-status=ok]")).to_contain_text("token aceito: @")
    page.click("text=Registrar webhook")
    expect(page.locator(".notice")).to_contain_text("Webhook registrado")
    bot_id = int(page.url.rsplit("/", 2)[-2])
    shot(page, folder, "01-bot")

    page.click("main >> text=Campanha de recuperação")
    expect(page.locator("h1")).to_have_text("Campanha · Loja")
    expect(page.locator("[data-preview-empty]")).to_be_visible()
    shot(page, folder, "02-campaign-empty")
    for schedule in ("30m", "+2h"):
        page.fill("#add-step input[name=schedule]", schedule)
        page.click("#add-step button[type=submit]")
    add_block(page, 0, "text", text="Ei, esqueceu algo no carrinho?")
    add_block(page, 0, "photo", file=str(photo), caption="10% off hoje")
    add_block(page, 1, "text", text="Última chance!")
    expect(page.locator("[data-step='0'] .block")).to_have_count(2)
    expect(page.locator("[data-step='1'] .block")).to_have_count(1)
    # The preview: quiet since 12:00 UTC, 10 min of silence, +30 min; then 2 h later.
    timeline = page.locator("#timeline")
    expect(timeline.locator("[data-preview-step='0'] [data-due]")).to_contain_text(
        "2026-01-05 12:40 UTC"
    )
    expect(timeline.locator("[data-preview-step='1'] [data-due]")).to_contain_text(
        "2026-01-05 14:40 UTC"
    )
    expect(timeline).to_contain_text("10% off hoje")
    shot(page, folder, "03-campaign-built")

    page.fill("#add-step input[name=schedule]", "daqui a pouco")  # refused, in Portuguese
    page.click("#add-step button[type=submit]")
    expect(page.locator("#campaign-error")).to_contain_text("Agendamento inválido")
    shot(page, folder, "04-campaign-refused")

    page.goto(f"{url}/console/bots/{bot_id}/campaign")
    page.click("[data-action=publish]")
    page.click("[data-action=switch]")
    expect(page.locator("[data-campaign-state]")).to_have_text(text("pt-BR", "enabled"))
    expect(page.locator("#versions")).to_contain_text("Versão 1")
    shot(page, folder, "05-campaign-live")

    story.contact_says(fake_telegram, bot_id, "quero ver o carrinho")
    story.travel.wait(timedelta(minutes=41))  # silence 10 min, then step 1 after 30 min
    heard = fake_telegram.sent_messages(CHAT)
    assert [(m.kind, m.text or m.caption) for m in heard] == [
        ("text", "Ei, esqueceu algo no carrinho?"),
        ("photo", "10% off hoje"),
    ]
    [upload] = fake_telegram.calls_to("sendPhoto")
    assert upload.files["photo"] == PNG  # the uploaded file itself
    story.travel.wait(timedelta(hours=2))
    assert fake_telegram.sent_messages(CHAT)[-1].text == "Última chance!"

    page.goto(f"{url}/console/bots/{bot_id}/campaign/results")
    step_1 = page.locator("[data-funnel-step='0']")
    expect(step_1.locator("[data-bar=sent]")).to_have_attribute("data-value", "1")
    expect(page.locator("[data-funnel-step='1'] [data-bar=sent]")).to_have_attribute(
        "data-value", "1"
    )
    expect(step_1.locator("[data-bar=returned]")).to_have_attribute("data-value", "0")
    expect(page.locator("tr[data-day='2026-01-05'] [data-sent]")).to_have_text("3")
    shot(page, folder, "06-results-sent")

    story.contact_says(fake_telegram, bot_id, "voltei!")
    story.travel.wait(timedelta(seconds=5))
    page.reload()
    expect(page.locator("[data-arm=treatment]")).to_contain_text("1 voltaram")
    expect(page.locator("[data-funnel-step='1'] [data-bar=returned]")).to_have_attribute(
        "data-value", "1"
    )
    shot(page, folder, "07-results-returned")

    page.set_viewport_size({"width": 390, "height": 844})
    phone = (("/campaign", "08-campaign-phone"), ("/campaign/results", "09-results-phone"))
    for path, name in phone:
        page.goto(f"{url}/console/bots/{bot_id}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        shot(page, folder, name)
    page.goto(f"{url}/console/bots/{bot_id}/campaign/versions/1")
    shot(page, folder, "10-version")

    assert refused == []
    assert errors == []
    assert len(list(folder.iterdir())) == 10
    page.close()
