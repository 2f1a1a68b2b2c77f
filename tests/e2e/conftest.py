from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from reengage.adapters.clock import ManualClock
from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram
from reengage.testing.whatsapp import FakeWhatsApp
from tests.e2e.console_client import ConsoleBrowser, make_user
from tests.e2e.shop import START, Shop, WhatsAppShop
from tests.factories import make_bot, make_org
from tests.manager_console import Console


class Tenant:
    def __init__(self, client: TestClient, api_key: str, org_id: int, bot_id: int) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.org_id = org_id
        self.bot_id = bot_id

    def post(self, path: str, json: object) -> object:
        return self.client.post(path, json=json, headers=self.headers)

    def get(self, path: str, **params: object) -> object:
        return self.client.get(path, headers=self.headers, params=params)


@pytest.fixture
def runtime(db_url: str, make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime(db_url)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as client:
        yield client


@pytest.fixture
def tenant(runtime: Runtime, client: TestClient) -> Callable[[str], Tenant]:
    def make(name: str) -> Tenant:
        org = make_org(runtime, name)
        return Tenant(client, org.api_key, org.org_id, make_bot(runtime, org.org_id))

    return make


@pytest.fixture
def shop(runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock) -> Iterator[Shop]:
    clock.set(START)
    with TestClient(create_app(runtime)) as client:
        yield Shop(runtime, client, fake_telegram, clock)


@pytest.fixture
def wa_shop(
    runtime: Runtime, fake_whatsapp: FakeWhatsApp, clock: ManualClock
) -> Iterator[WhatsAppShop]:
    clock.set(START)
    with TestClient(create_app(runtime)) as client:
        yield WhatsAppShop(runtime, client, fake_whatsapp, clock)


@pytest.fixture
def console(runtime: Runtime, fake_telegram: FakeTelegram, telegram_url: str) -> Iterator[Console]:
    console = Console(runtime, fake_telegram, telegram_url)
    yield console
    console.close()


# The console's tests: an app over the module's `console_runtime` and its logged-in owner.


@pytest.fixture
def app_client(console_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(console_runtime)) as client:
        yield client


@pytest.fixture
def owner(console_runtime: Runtime, app_client: TestClient) -> ConsoleBrowser:
    org = make_org(console_runtime, "Acme")
    make_user(console_runtime, org.org_id, "owner@acme.example")
    browser = ConsoleBrowser(app_client, org)
    assert browser.login("owner@acme.example").status_code == 303
    return browser
