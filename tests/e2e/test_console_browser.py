"""The console in real headless Chromium (Debian's, driven by Playwright): an owner logs in,
adds a Telegram bot checked against the fake Bot API, sees it on the overview, and walks every
page, on a desktop and on a phone's width. A screenshot of each page is saved under the
test's tmp dir."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.testing.server import serve
from reengage.testing.telegram import FakeTelegram
from tests.e2e.console_client import PASSWORD, make_user
from tests.factories import make_org

CHROMIUM = "/usr/bin/chromium"
TOKEN = "987654:browser-test-token"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM), "Chromium is missing: `bash scripts/services` installs it"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def console_url(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    telegram_url: str,
    fake_telegram: FakeTelegram,
) -> Iterator[str]:
    runtime = make_runtime(db_url, telegram_api_base=telegram_url)
    org = make_org(runtime, "Loja Acme")
    make_user(runtime, org.org_id, "owner@acme.example")
    with serve(create_app(runtime)) as server:
        yield server.url


def offline(page: Page, base: str) -> list[str]:
    """Refuse every request that leaves the server under test; return what was refused."""
    refused: list[str] = []

    def guard(route: Route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    return refused


def shot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_an_owner_logs_in_adds_a_telegram_bot_and_sees_it(
    browser: Browser, console_url: str, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    refused = offline(page, console_url)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{console_url}/console/")
    expect(page).to_have_url(f"{console_url}/console/login")
    shot(page, folder, "01-login")
    page.fill("input[name=email]", "owner@acme.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Visão geral")
    shot(page, folder, "02-overview-empty")

    page.click("nav >> text=Bots")
    page.fill("input[name=name]", "Loja <b>Acme</b>")
    page.fill("input[name=token]", TOKEN)
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Bot Loja <b>Acme</b>")
    # htmx loads the live status: Telegram (the fake) accepted the token.
    expect(page.locator("[data-status=ok]")).to_contain_text("token aceito: @")
    assert [c.token for c in fake_telegram.calls_to("getMe")] == [TOKEN, TOKEN]
    shot(page, folder, "03-bot")

    page.click("nav >> text=Visão geral")
    card = page.locator(".bot-card")
    expect(card).to_have_count(1)
    expect(card.locator("h2")).to_contain_text("Loja <b>Acme</b>")
    expect(card.locator("[data-figure=active_now]")).to_have_text("0")
    shot(page, folder, "04-overview")

    for link, name in (("Bots", "05-bots"), ("Chaves de API", "06-keys"), ("Pessoas", "07-people")):
        page.click(f"nav >> text={link}")
        shot(page, folder, name)
    page.click("nav >> text=Auditoria")
    expect(page.locator("table.audit")).to_contain_text("bot.create")
    shot(page, folder, "08-audit")

    page.click("text=English")
    expect(page.locator("h1")).to_have_text("Audit log")
    page.click("nav >> text=Overview")
    expect(page.locator(".bot-card h3")).to_have_text("Failures and skips today, by reason")

    # A phone's width: everything fits, nothing scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    shot(page, folder, "09-overview-phone")

    # Both pages render the whole API description in the browser: on a loaded 2-core
    # machine that takes longer than the 5 s a console page is given.
    page.goto(f"{console_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("reengage", timeout=30_000)
    shot(page, folder, "10-docs-offline")
    page.goto(f"{console_url}/redoc")
    expect(page.locator("h1").first).to_contain_text("reengage", timeout=30_000)

    page.goto(f"{console_url}/console/")
    page.click("text=Log out")
    expect(page).to_have_url(f"{console_url}/console/login")
    page.goto(f"{console_url}/console/bots")
    expect(page).to_have_url(f"{console_url}/console/login")

    assert refused == []  # nothing was loaded from elsewhere
    assert errors == []
    saved = sorted(p.name for p in folder.iterdir())
    assert len(saved) == 10
    page.close()
