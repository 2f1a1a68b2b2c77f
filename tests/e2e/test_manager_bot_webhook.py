"""The manager bot by webhook: registered with `setWebhook` and a secret token, Telegram (the
fake) posts an update to the API, and the bot answers through the Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest

from reengage.entrypoints.api.app import create_app
from reengage.entrypoints.manager_bot.webhook import set_manager_webhook
from reengage.runtime import Runtime
from reengage.services.manager_access import create_invite
from reengage.testing.server import RunningServer, serve
from reengage.testing.telegram import FakeTelegram
from tests.conftest import TEST_SECRET_KEY
from tests.factories import make_org
from tests.manager_console import MANAGER_BOT_ID, MANAGER_TOKEN

ADMIN = 5_550_002
SECRET = "manager-webhook-secret-0123456789"
PUBLIC = "https://reengage.example.com"


def _api(runtime: Runtime) -> Iterator[RunningServer]:
    with serve(create_app(runtime)) as server:
        yield server


@pytest.fixture
def runtime(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    telegram_url: str,
    fake_telegram: FakeTelegram,
) -> Runtime:
    return make_runtime(
        db_url,
        telegram_api_base=telegram_url,
        public_url=PUBLIC,
        manager_bot_token=MANAGER_TOKEN,
        manager_bot_webhook_secret=SECRET,
    )


@pytest.fixture
def api(runtime: Runtime) -> Iterator[RunningServer]:
    yield from _api(runtime)


def _invite(runtime: Runtime) -> str:
    org = make_org(runtime).org_id
    with runtime.sessions.begin() as session:
        code, _ = create_invite(session, org, runtime.clock.now())
    return code


def _answers(fake: FakeTelegram) -> list[str]:
    return [m.text or "" for m in fake.sent_messages(ADMIN) if m.bot_id == MANAGER_BOT_ID]


def test_an_update_posted_to_the_webhook_is_answered_by_the_manager_bot(
    runtime: Runtime, api: RunningServer, fake_telegram: FakeTelegram
) -> None:
    url = asyncio.run(set_manager_webhook(runtime.settings))
    assert url == f"{PUBLIC}/webhooks/manager-bot"
    [call] = fake_telegram.calls_to("setWebhook")
    assert (call.params["url"], call.params["secret_token"]) == (url, SECRET)
    assert call.params["allowed_updates"] == ["message", "callback_query"]
    update = FakeTelegram.text_update(1, ADMIN, f"/start {_invite(runtime)}")
    assert fake_telegram.post_update(MANAGER_TOKEN, update, reach=api.url) == 200
    assert _answers(fake_telegram)[:2] == [
        "Bem-vindo! Você agora administra Acme.",
        "O que deseja configurar?",
    ]
    # The next update of the same admin finds its state (the Dispatcher lives on).
    update = FakeTelegram.text_update(2, ADMIN, "/start")
    assert fake_telegram.post_update(MANAGER_TOKEN, update, reach=api.url) == 200
    assert _answers(fake_telegram)[-1] == "O que deseja configurar?"


@pytest.mark.parametrize("secret", [None, "manager-webhook-secret-0123456788"])
def test_an_update_without_the_secret_is_refused_unread(
    secret: str | None, runtime: Runtime, api: RunningServer, fake_telegram: FakeTelegram
) -> None:
    update = FakeTelegram.text_update(1, ADMIN, f"/start {_invite(runtime)}")
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
    reply = httpx.post(f"{api.url}/webhooks/manager-bot", json=update, headers=headers)
    assert reply.status_code == 401
    assert reply.json()["error"] == "unauthorized"
    assert fake_telegram.calls == []  # the bot said nothing


def test_a_body_that_is_not_an_update_is_a_400(api: RunningServer) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    for body in (b"not json", b'{"update_id": "x"}'):
        reply = httpx.post(f"{api.url}/webhooks/manager-bot", content=body, headers=headers)
        assert reply.status_code == 400, body
        assert reply.json()["error"] == "bad_payload"


def test_without_a_webhook_secret_the_route_is_not_there(
    db_url: str, make_runtime: Callable[..., Runtime]
) -> None:
    runtime = make_runtime(db_url, manager_bot_token=MANAGER_TOKEN)
    for server in _api(runtime):
        reply = httpx.post(f"{server.url}/webhooks/manager-bot", json={"update_id": 1})
        assert reply.status_code == 404


@pytest.mark.parametrize("secret", [SECRET, None])
def test_the_command_registers_the_webhook_or_says_what_is_missing(
    secret: str | None,
    db_url: str,
    telegram_url: str,
    fake_telegram: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from reengage.entrypoints.cli import app

    settings = {
        "DATABASE_URL": db_url,
        "REDIS_URL": "",
        "TELEGRAM_API_BASE": telegram_url,
        "PUBLIC_URL": PUBLIC,
        "MANAGER_BOT_TOKEN": MANAGER_TOKEN,
        "MANAGER_BOT_WEBHOOK_SECRET": secret or "",
        "SECRET_KEY": TEST_SECRET_KEY,
    }
    for name, value in settings.items():
        monkeypatch.setenv(f"REENGAGE_{name}", value)
    if secret is None:
        monkeypatch.delenv("REENGAGE_MANAGER_BOT_WEBHOOK_SECRET")
    result = CliRunner().invoke(app, ["manager-bot", "--webhook"])
    if secret is None:
        assert result.exit_code == 2
        assert "REENGAGE_MANAGER_BOT_WEBHOOK_SECRET is not set" in result.output
        assert fake_telegram.calls_to("setWebhook") == []
        return
    assert result.exit_code == 0, result.output
    assert result.output == f"manager bot webhook set: {PUBLIC}/webhooks/manager-bot\n"
    [call] = fake_telegram.calls_to("setWebhook")
    assert call.params["secret_token"] == SECRET
