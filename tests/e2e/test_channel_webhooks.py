"""Inbound webhooks over HTTP: Telegram, WhatsApp Cloud API, generic signed webhooks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import standardwebhooks
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from reengage.adapters.channels import standard_webhooks
from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import ActivityRecord, Bot, Contact, Conversation, Delivery
from reengage.delivery.attempt import deliver
from reengage.delivery.outbox import DeliveryRequest
from reengage.domain.activity import ChannelKind
from reengage.domain.inactivity import inactivity_key
from reengage.domain.outbound import MessageKind, OutboundMessage
from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram
from reengage.testing.whatsapp import FakeWhatsApp
from tests.channel_harness import TG_TOKEN, WA_PHONE, WA_TOKEN
from tests.conftest import TEST_SECRET_KEY
from tests.factories import make_bot, make_org

APP_SECRET = "wa-app-secret"


@pytest.fixture
def runtime(
    db_url: str, make_runtime: Callable[..., Runtime], telegram_url: str, whatsapp_url: str
) -> Runtime:
    return make_runtime(
        db_url,
        telegram_api_base=telegram_url,
        whatsapp_api_base=whatsapp_url,
        public_url="https://reengage.example.com",
    )


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as c:
        yield c


def activity(runtime: Runtime) -> tuple[int, int]:
    with runtime.sessions() as s:
        events = s.scalar(select(func.count()).select_from(ActivityRecord)) or 0
        seq = s.scalar(select(func.coalesce(func.sum(Conversation.activity_seq), 0))) or 0
    return events, int(seq)


# --- Telegram -------------------------------------------------------------------------------


@pytest.fixture
def telegram(runtime: Runtime, client: TestClient, fake_telegram: FakeTelegram) -> tuple[int, str]:
    """A Telegram bot whose webhook was registered through the API: (bot id, secret)."""
    org = make_org(runtime)
    headers = {"Authorization": f"Bearer {org.api_key}"}
    bot = client.post(
        "/v1/bots",
        headers=headers,
        json={"name": "Loja", "channel": "telegram", "credentials": {"token": TG_TOKEN}},
    ).json()["id"]
    r = client.post(f"/v1/bots/{bot}/webhook", headers=headers)
    assert r.json() == {"url": f"https://reengage.example.com/webhooks/telegram/{bot}"}
    [call] = fake_telegram.calls_to("setWebhook")
    assert call.params["url"] == r.json()["url"]
    return bot, str(call.params["secret_token"])


def post_update(client: TestClient, bot: int, secret: str | None, body: Any) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(f"/webhooks/telegram/{bot}", content=raw, headers=headers).status_code


def test_a_telegram_update_becomes_activity_once(
    runtime: Runtime, client: TestClient, telegram: tuple[int, str], fake_telegram: FakeTelegram
) -> None:
    bot, secret = telegram
    update = FakeTelegram.text_update(1001, 4242, "quero saber o preço")
    assert post_update(client, bot, secret, update) == 200
    assert post_update(client, bot, secret, update) == 200  # Telegram retries: applied once
    assert post_update(client, bot, secret, FakeTelegram.callback_update(1002, 4242, "buy")) == 200
    assert activity(runtime) == (2, 2)
    assert runtime.timers.get(inactivity_key(bot, "4242")) is not None
    [answer] = fake_telegram.calls_to("answerCallbackQuery")  # the button stops spinning
    assert answer.params["callback_query_id"]


@pytest.mark.parametrize(
    ("secret", "body", "status"),
    [
        ("wrong", FakeTelegram.text_update(1, 4242, "hi"), 401),
        (None, FakeTelegram.text_update(1, 4242, "hi"), 401),
        ("<secret>", b"{not json", 400),
        ("<secret>", [1, 2], 400),
        ("<secret>", {"message": {"text": "no update id"}}, 400),
    ],
)
def test_bad_telegram_calls_change_nothing(
    runtime: Runtime,
    client: TestClient,
    telegram: tuple[int, str],
    secret: str | None,
    body: Any,
    status: int,
) -> None:
    bot, real = telegram
    assert post_update(client, bot, real if secret == "<secret>" else secret, body) == status
    assert post_update(client, 999_999, real, FakeTelegram.text_update(1, 1, "x")) == 404
    assert activity(runtime) == (0, 0)


def test_blocking_the_bot_on_telegram_stops_its_timer(
    runtime: Runtime, client: TestClient, telegram: tuple[int, str]
) -> None:
    bot, secret = telegram
    post_update(client, bot, secret, FakeTelegram.text_update(1, 4242, "oi"))
    post_update(client, bot, secret, FakeTelegram.my_chat_member_update(2, 4242, "kicked"))
    assert runtime.timers.get(inactivity_key(bot, "4242")) is None
    with runtime.sessions() as s:
        assert s.scalars(select(Contact.blocked_at)).one() is not None
    post_update(client, bot, secret, FakeTelegram.my_chat_member_update(3, 4242, "member"))
    with runtime.sessions() as s:
        assert s.scalars(select(Contact.blocked_at)).one() is None


# --- WhatsApp -------------------------------------------------------------------------------


@pytest.fixture
def whatsapp(runtime: Runtime) -> tuple[int, int]:
    org = make_org(runtime)
    bot = make_bot(
        runtime,
        org.org_id,
        channel=ChannelKind.WHATSAPP,
        credentials={
            "phone_number_id": WA_PHONE,
            "access_token": WA_TOKEN,
            "app_secret": APP_SECRET,
            "verify_token": "verify-me",
        },
    )
    return org.org_id, bot


def post_whatsapp(client: TestClient, bot: int, payload: dict[str, Any], secret: str) -> int:
    body = json.dumps(payload).encode()
    headers = {
        "X-Hub-Signature-256": FakeWhatsApp.signature(secret, body),
        "Content-Type": "application/json",
    }
    return client.post(f"/webhooks/whatsapp/{bot}", content=body, headers=headers).status_code


def test_whatsapp_verification_handshake(client: TestClient, whatsapp: tuple[int, int]) -> None:
    _, bot = whatsapp
    ok = client.get(
        f"/webhooks/whatsapp/{bot}",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "verify-me",
            "hub.challenge": "1158201444",
        },
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    bad = client.get(
        f"/webhooks/whatsapp/{bot}",
        params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
    )
    assert bad.status_code == 403


def test_whatsapp_messages_need_a_valid_signature(
    runtime: Runtime, client: TestClient, whatsapp: tuple[int, int], clock: ManualClock
) -> None:
    _, bot = whatsapp
    payload = FakeWhatsApp.inbound_text_payload(
        WA_PHONE,
        "15550001234",
        "5511988887777",
        "Oi, tudo bem?",
        "wamid.HBgLNTUxMTk4ODg4Nzc3NxUCABIYFjNFQjBDQzQ5RjE2",
        int(clock.now().timestamp()),
    )
    assert post_whatsapp(client, bot, payload, "not-the-secret") == 401
    assert activity(runtime) == (0, 0)
    assert post_whatsapp(client, bot, payload, APP_SECRET) == 200
    assert post_whatsapp(client, bot, payload, APP_SECRET) == 200
    assert activity(runtime) == (1, 1)
    with runtime.sessions() as s:
        window = s.scalars(select(Conversation.window_expires_at)).one()
    assert window is not None
    assert window - clock.now() == timedelta(hours=24)
    assert post_whatsapp(client, bot, {"object": "page"}, APP_SECRET) == 400


def answered_customer(
    runtime: Runtime,
    client: TestClient,
    whatsapp: tuple[int, int],
    clock: ManualClock,
    wamid_in: str,
) -> str:
    """The customer writes; the bot answers through the delivery record. Returns its wamid."""
    org, bot = whatsapp
    inbound = FakeWhatsApp.inbound_text_payload(
        WA_PHONE, "15550001234", "5511977776666", "oi", wamid_in, int(clock.now().timestamp())
    )
    post_whatsapp(client, bot, inbound, APP_SECRET)
    with runtime.sessions() as s:
        contact, conv = s.execute(
            select(Contact.id, Conversation.id).join(
                Conversation, Conversation.contact_id == Contact.id
            )
        ).one()
    request = DeliveryRequest(
        org, bot, contact, "k1", "test", OutboundMessage(MessageKind.TEXT, "Volte!"), conv
    )
    result = deliver(runtime.sessions, runtime, runtime.timers, request, clock.now())
    assert result.channel_message_id is not None
    return result.channel_message_id


def test_whatsapp_statuses_out_of_order_never_downgrade(
    runtime: Runtime,
    client: TestClient,
    whatsapp: tuple[int, int],
    clock: ManualClock,
    fake_whatsapp: FakeWhatsApp,
) -> None:
    _, bot = whatsapp
    wamid = answered_customer(runtime, client, whatsapp, clock, "wamid.IN1")
    ts = int(clock.now().timestamp())
    for status in ("read", "delivered", "sent"):
        post_whatsapp(
            client,
            bot,
            FakeWhatsApp.status_payload(WA_PHONE, wamid, status, "5511977776666", ts),
            APP_SECRET,
        )
    failed = FakeWhatsApp.status_payload(
        WA_PHONE, wamid, "failed", "5511977776666", ts, errors=[FakeWhatsApp.status_error(131047)]
    )
    post_whatsapp(client, bot, failed, APP_SECRET)
    with runtime.sessions() as s:
        row = s.scalars(select(Delivery)).one()
    assert (row.status, row.platform_status) == ("sent", "read")


def test_a_failed_status_marks_a_sent_delivery_failed(
    runtime: Runtime,
    client: TestClient,
    whatsapp: tuple[int, int],
    clock: ManualClock,
    fake_whatsapp: FakeWhatsApp,
) -> None:
    _, bot = whatsapp
    wamid = answered_customer(runtime, client, whatsapp, clock, "wamid.IN2")
    failed = FakeWhatsApp.status_payload(
        WA_PHONE,
        wamid,
        "failed",
        "5511977776666",
        int(clock.now().timestamp()),
        errors=[FakeWhatsApp.status_error(131047)],
    )
    assert post_whatsapp(client, bot, failed, APP_SECRET) == 200
    with runtime.sessions() as s:
        row = s.scalars(select(Delivery)).one()
    assert (row.status, row.reason, row.platform_status) == ("failed", "window_closed", "failed")


# --- Generic --------------------------------------------------------------------------------


def test_generic_webhooks_are_verified_the_standard_way(
    runtime: Runtime, client: TestClient
) -> None:
    secret = standard_webhooks.new_secret()
    org = make_org(runtime)
    bot = make_bot(
        runtime,
        org.org_id,
        channel=ChannelKind.WEBHOOK,
        credentials={"url": "https://example.com/out", "secret": secret},
    )
    body = json.dumps({"type": "message.user", "user_id": "u-1"})
    signer = standardwebhooks.Webhook(secret)
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign("msg_1", now, body),
    }
    url = f"/webhooks/generic/{bot}"
    assert client.post(url, content=body, headers=headers).status_code == 200
    assert client.post(url, content=body, headers=headers).status_code == 200  # retry: once
    tampered = body.replace("u-1", "u-2")
    assert client.post(url, content=tampered, headers=headers).status_code == 401
    old = {**headers, "webhook-timestamp": str(int(now.timestamp()) - 3600)}
    assert client.post(url, content=body, headers=old).status_code == 401
    assert activity(runtime) == (1, 1)


def test_cli_registers_the_telegram_webhook(
    runtime: Runtime,
    fake_telegram: FakeTelegram,
    telegram_url: str,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from reengage.entrypoints.cli import app

    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id, credentials={"token": TG_TOKEN})
    for name, value in {
        "DATABASE_URL": db_url,
        "TELEGRAM_API_BASE": telegram_url,
        "PUBLIC_URL": "https://bots.example.org",
        "SECRET_KEY": TEST_SECRET_KEY,  # the runtime's: the bot's token is decrypted with it
    }.items():
        monkeypatch.setenv(f"REENGAGE_{name}", value)
    result = CliRunner().invoke(app, ["bots", "set-webhook", str(org.org_id), str(bot)])
    assert result.exit_code == 0, result.output
    assert f"https://bots.example.org/webhooks/telegram/{bot}" in result.output
    [call] = fake_telegram.calls_to("setWebhook")
    assert len(str(call.params["secret_token"])) >= 32


def test_a_webhook_telegram_refuses_is_a_precise_422_and_stores_nothing(
    runtime: Runtime, client: TestClient, fake_telegram: FakeTelegram
) -> None:
    org = make_org(runtime)
    headers = {"Authorization": f"Bearer {org.api_key}"}
    bot = client.post(
        "/v1/bots",
        headers=headers,
        json={"name": "Loja", "channel": "telegram", "credentials": {"token": TG_TOKEN}},
    ).json()["id"]
    fake_telegram.revoke_token(TG_TOKEN)
    r = client.post(f"/v1/bots/{bot}/webhook", headers=headers)
    assert (r.status_code, r.json()["field"]) == (422, "webhook")
    assert "Unauthorized" in r.json()["message"]
    with runtime.sessions() as s:
        stored = runtime.credentials.of(bot, s.get_one(Bot, bot).credentials)
    assert "webhook_secret" not in stored
