"""A bot's life in the console over plain HTTP, on the fake platforms: rotating its token
(checked against the platform first), turning it off and on, deleting it after typing its
name; each change seen by the API and written to the audit log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from reengage.adapters.db.models import AuditEntry, Bot
from reengage.domain.console_access import Role
from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram
from reengage.testing.whatsapp import FakeWhatsApp
from tests.channel_harness import TG_TOKEN, WA_PHONE, WA_TOKEN
from tests.e2e.console_client import ConsoleBrowser, make_user
from tests.factories import make_org

OWNER = "owner@acme.example"
NEW_TOKEN = "654321:rotated-token"


class Owner:
    """The owner in the console, and the same organization's API key to check what it did."""

    def __init__(self, runtime: Runtime, client: TestClient) -> None:
        self.runtime, self.client = runtime, client
        org = make_org(runtime, "Acme")
        self.org_id = org.org_id
        self.headers = {"Authorization": f"Bearer {org.api_key}"}
        make_user(runtime, org.org_id, OWNER)
        self.browser = ConsoleBrowser(client, org)
        assert self.browser.login(OWNER).status_code == 303
        added = self.browser.post("/console/bots", {"name": "Loja", "token": TG_TOKEN})
        assert added.status_code == 303
        self.bot = int(added.headers["location"].rsplit("/", 1)[1])
        self.path = f"/console/bots/{self.bot}"

    def api_bot(self, bot_id: int | None = None) -> Any:
        answer = self.client.get(f"/v1/bots/{bot_id or self.bot}", headers=self.headers)
        return answer.json() if answer.status_code == 200 else answer.status_code

    def credentials(self, bot_id: int | None = None) -> dict[str, object]:
        with self.runtime.sessions() as session:
            bot = session.get(Bot, bot_id or self.bot)
            assert bot is not None
            assert bot.credentials is not None
            return self.runtime.credentials.of(bot.id, bot.credentials)

    def audit(self) -> list[tuple[str, str, str]]:
        with self.runtime.sessions() as session:
            entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            return [(e.actor, e.action, e.subject) for e in entries]


@pytest.fixture
def owner(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    telegram_url: str,
    whatsapp_url: str,
    fake_telegram: FakeTelegram,
    fake_whatsapp: FakeWhatsApp,
) -> Iterator[Owner]:
    runtime = make_runtime(db_url, telegram_api_base=telegram_url, whatsapp_api_base=whatsapp_url)
    with TestClient(create_app(runtime)) as client:
        yield Owner(runtime, client)


def test_a_token_the_platform_accepts_replaces_the_old_one(
    owner: Owner, fake_telegram: FakeTelegram
) -> None:
    answer = owner.browser.post(f"{owner.path}/token", {"token": f" {NEW_TOKEN} "})
    assert answer.status_code == 200
    assert "Token trocado" in answer.text
    assert "Registre o webhook de novo" in answer.text
    assert [c.token for c in fake_telegram.calls_to("getMe")][-1] == NEW_TOKEN
    assert owner.credentials()["token"] == NEW_TOKEN
    assert (f"user {OWNER}", "bot.credentials", f"bot {owner.bot}") in owner.audit()
    assert NEW_TOKEN not in owner.browser.get("/console/audit").text


def test_a_token_the_platform_refuses_changes_nothing(
    owner: Owner, fake_telegram: FakeTelegram
) -> None:
    audit = owner.audit()
    fake_telegram.revoke_token(NEW_TOKEN)
    refused = owner.browser.post(f"{owner.path}/token", {"token": NEW_TOKEN})
    assert refused.status_code == 422
    assert "O Telegram recusou este token: Unauthorized" in refused.text
    calls = len(fake_telegram.calls)
    for bad in ("no colon here", "12:with space", "", "1:" + "x" * 300):
        malformed = owner.browser.post(f"{owner.path}/token", {"token": bad})
        assert malformed.status_code == 422, bad
    assert len(fake_telegram.calls) == calls  # a malformed token never reaches Telegram
    assert owner.credentials()["token"] == TG_TOKEN
    assert owner.audit() == audit


def test_a_whatsapp_access_token_is_checked_with_the_number_lookup(
    owner: Owner, fake_whatsapp: FakeWhatsApp
) -> None:
    form = {
        "name": "Zap",
        "phone_number_id": WA_PHONE,
        "access_token": WA_TOKEN,
        "app_secret": "app-secret-1",
    }
    added = owner.browser.post("/console/bots/whatsapp", form)
    assert added.status_code == 303
    bot_id = int(added.headers["location"].rsplit("/", 1)[1])
    path = f"/console/bots/{bot_id}/token"
    refused = owner.browser.post(path, {"token": "not-a-valid-token"})
    assert refused.status_code == 422
    assert owner.credentials(bot_id)["access_token"] == WA_TOKEN
    lookups = [c for c in fake_whatsapp.calls if c.http_method == "GET"]
    assert lookups[-1].token == "not-a-valid-token"
    accepted = owner.browser.post(path, {"token": WA_TOKEN})
    assert accepted.status_code == 200
    assert "Token trocado" in accepted.text
    assert "Registre o webhook de novo" not in accepted.text
    kept = owner.credentials(bot_id)
    assert (kept["access_token"], kept["app_secret"]) == (WA_TOKEN, "app-secret-1")


def test_a_bot_turned_off_and_on_shows_its_state_in_the_console_and_the_api(
    owner: Owner,
) -> None:
    page = owner.browser.get(owner.path).text
    assert 'data-state="enabled"' in page
    assert f'action="{owner.path}/disable"' in page
    off = owner.browser.post(f"{owner.path}/disable")
    assert (off.status_code, off.headers["location"]) == (303, owner.path)
    page = owner.browser.get(owner.path).text
    assert 'data-state="disabled"' in page
    assert f'action="{owner.path}/enable"' in page
    assert f'action="{owner.path}/disable"' not in page
    assert 'data-state="disabled"' in owner.browser.get("/console/bots").text
    assert owner.api_bot()["disabled"] is True
    assert owner.browser.post(f"{owner.path}/disable").status_code == 303  # idempotent
    on = owner.browser.post(f"{owner.path}/enable")
    assert on.status_code == 303
    assert 'data-state="enabled"' in owner.browser.get(owner.path).text
    assert 'data-state="enabled"' in owner.browser.get("/console/bots").text
    assert owner.api_bot()["disabled"] is False
    actions = [a for who, a, _ in owner.audit() if who == f"user {OWNER}"]
    assert actions == ["bot.create", "bot.disable", "bot.enable"]


def test_a_bot_is_deleted_only_when_its_name_is_typed(owner: Owner) -> None:
    for wrong in ("", "loja", "Loj", "Other"):
        refused = owner.browser.post(f"{owner.path}/delete", {"confirm": wrong})
        assert refused.status_code == 422, wrong
        assert "nada foi excluído" in refused.text
    assert owner.api_bot()["name"] == "Loja"
    deleted = owner.browser.post(f"{owner.path}/delete", {"confirm": "Loja"})
    assert (deleted.status_code, deleted.headers["location"]) == (303, "/console/bots")
    assert owner.browser.get(owner.path).status_code == 404
    assert owner.api_bot() == 404
    assert f'href="{owner.path}"' not in owner.browser.get("/console/bots").text
    for action in ("token", "disable", "enable", "delete"):
        again = owner.browser.post(f"{owner.path}/{action}", {"confirm": "Loja"})
        assert again.status_code == 404, action
    assert (f"user {OWNER}", "bot.delete", f"bot {owner.bot}") in owner.audit()


def test_a_viewer_sees_the_state_but_no_form_and_changes_nothing(owner: Owner) -> None:
    make_user(owner.runtime, owner.org_id, "vera@acme.example", Role.VIEWER)
    owner.client.cookies.clear()
    viewer = ConsoleBrowser(owner.client)
    assert viewer.login("vera@acme.example").status_code == 303
    page = viewer.get(owner.path).text
    assert 'data-state="enabled"' in page
    assert 'method="post"' not in page.split("</header>")[1]
    audit = owner.audit()
    for action, form in (
        ("token", {"token": NEW_TOKEN}),
        ("disable", {}),
        ("delete", {"confirm": "Loja"}),
    ):
        refused = viewer.post(f"{owner.path}/{action}", form)
        assert refused.status_code == 403, action
    assert owner.api_bot()["disabled"] is False
    assert owner.credentials()["token"] == TG_TOKEN
    assert owner.audit() == audit
