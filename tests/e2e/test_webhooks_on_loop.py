"""Webhooks of known bots recorded on the event loop (Redis and PostgreSQL): a message's text
is its one database write, a rotated secret is refused at once, statuses still move."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.inbound import inbound_timer
from reengage.adapters.db.loop_writes import close_on_loop, dsn_of
from reengage.adapters.db.models import Contact, Conversation, Delivery, InboundMessage
from reengage.delivery.attempt import deliver
from reengage.delivery.outbox import DeliveryRequest
from reengage.domain.activity import ChannelKind
from reengage.domain.delivery import StatusUpdate
from reengage.domain.outbound import MessageKind, OutboundMessage
from reengage.entrypoints.api.app import create_app
from reengage.inbound.platform import Statuses, write_statuses, write_statuses_on_loop
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram
from reengage.testing.whatsapp import FakeWhatsApp
from tests.channel_harness import TG_TOKEN, WA_PHONE, WA_TOKEN
from tests.conftest import REDIS_URL
from tests.factories import make_bot, make_org

APP_SECRET = "wa-app-secret"


@pytest.fixture
def runtime(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    redis_client: Any,
    telegram_url: str,
    whatsapp_url: str,
) -> Runtime:
    return make_runtime(
        pg_db,
        redis_url=REDIS_URL,
        telegram_api_base=telegram_url,
        whatsapp_api_base=whatsapp_url,
        public_url="https://reengage.example.com",
    )


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as c:
        yield c


def _statements(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first word of each statement sent to the database: through the engine, or by an
    event loop's own connection (where texts are stored)."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split()[0].upper())

    event.listen(runtime.engine, "before_cursor_execute", before)
    for name in ("execute", "executemany"):
        on_loop = getattr(psycopg.AsyncCursor, name)

        async def execute(cur: Any, query: Any, *args: Any, _on: Any = on_loop, **kw: Any) -> Any:
            seen.append(str(query).split()[0].upper())
            return await _on(cur, query, *args, **kw)

        monkeypatch.setattr(psycopg.AsyncCursor, name, execute)
    return seen


def _messages(runtime: Runtime) -> list[str | None]:
    with runtime.sessions() as s:
        return list(s.scalars(select(InboundMessage.text).order_by(InboundMessage.id)))


def _post_update(client: TestClient, bot: int, secret: str, body: dict[str, Any]) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
    return client.post(f"/webhooks/telegram/{bot}", json=body, headers=headers).status_code


def _register(client: TestClient, fake: FakeTelegram, key: str, bot: int) -> str:
    r = client.post(f"/v1/bots/{bot}/webhook", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    return str(fake.calls_to("setWebhook")[-1].params["secret_token"])


def _telegram_bot(runtime: Runtime, client: TestClient, fake: FakeTelegram) -> tuple[str, int, str]:
    """A Telegram bot made through the API, its webhook registered: (API key, bot, secret)."""
    key = make_org(runtime).api_key
    bot = client.post(
        "/v1/bots",
        headers={"Authorization": f"Bearer {key}"},
        json={"name": "Loja", "channel": "telegram", "credentials": {"token": TG_TOKEN}},
    ).json()["id"]
    return key, bot, _register(client, fake, key, bot)


def test_a_known_bots_text_is_its_one_database_write_and_a_rotated_secret_is_refused(
    runtime: Runtime,
    client: TestClient,
    fake_telegram: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, bot, secret = _telegram_bot(runtime, client, fake_telegram)
    assert _post_update(client, bot, secret, FakeTelegram.text_update(1, 4242, "oi")) == 200

    seen = _statements(runtime, monkeypatch)
    assert _post_update(client, bot, secret, FakeTelegram.text_update(2, 4242, "preço?")) == 200
    assert seen == ["INSERT"]  # no bot, key or subject read: the text's row, nothing else
    assert _messages(runtime) == ["oi", "preço?"]
    assert runtime.activity.hot_seq(bot, "4242") == 2
    now = runtime.clock.now()
    assert runtime.timers.get(inbound_timer(bot, "4242", now).key) is not None
    # Telegram retries an update it got no answer for: recorded and stored once.
    assert _post_update(client, bot, secret, FakeTelegram.text_update(2, 4242, "preço?")) == 200
    assert _messages(runtime) == ["oi", "preço?"]
    assert runtime.activity.hot_seq(bot, "4242") == 2

    # The webhook is registered again with a new secret: the old one is refused at once,
    # though this process still holds the bot's old credentials, and nothing is written.
    fresh = _register(client, fake_telegram, key, bot)
    assert fresh != secret
    assert _post_update(client, bot, secret, FakeTelegram.text_update(3, 4242, "forged")) == 401
    assert _messages(runtime) == ["oi", "preço?"]
    assert runtime.activity.hot_seq(bot, "4242") == 2
    assert _post_update(client, bot, fresh, FakeTelegram.text_update(4, 4242, "ok")) == 200
    assert _messages(runtime) == ["oi", "preço?", "ok"]
    assert runtime.activity.hot_seq(bot, "4242") == 3


WA_USER = "5511977776666"
WA_CREDENTIALS = {"phone_number_id": WA_PHONE, "access_token": WA_TOKEN, "verify_token": "v"}


def _whatsapp_bot(runtime: Runtime) -> tuple[str, int]:
    """A WhatsApp bot: its organization's API key and its id."""
    org = make_org(runtime)
    credentials = {**WA_CREDENTIALS, "app_secret": APP_SECRET}
    bot = make_bot(runtime, org.org_id, channel=ChannelKind.WHATSAPP, credentials=credentials)
    return org.api_key, bot


def _send(runtime: Runtime, bot: int, key: str, text: str) -> str:
    """A message the bot sends its contact (who wrote first), through the delivery record;
    its WhatsApp message id."""
    runtime.activity.flush_subject(bot, WA_USER, runtime.clock.now())
    with runtime.sessions() as s:
        org, contact, conv = s.execute(
            select(Contact.org_id, Contact.id, Conversation.id).join(
                Conversation, Conversation.contact_id == Contact.id
            )
        ).one()
    message = OutboundMessage(MessageKind.TEXT, text)
    request = DeliveryRequest(org, bot, contact, key, "test", message, conv)
    sent = deliver(runtime.sessions, runtime, runtime.timers, request, runtime.clock.now())
    assert sent.channel_message_id is not None
    return sent.channel_message_id


def _post_whatsapp(client: TestClient, bot: int, payload: dict[str, Any]) -> int:
    body = json.dumps(payload).encode()
    headers = {"X-Hub-Signature-256": FakeWhatsApp.signature(APP_SECRET, body)}
    return client.post(f"/webhooks/whatsapp/{bot}", content=body, headers=headers).status_code


def test_whatsapp_messages_and_statuses_of_a_known_bot(
    runtime: Runtime, client: TestClient, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, bot = _whatsapp_bot(runtime)
    ts, user = int(clock.now().timestamp()), WA_USER
    for n, text in enumerate(("oi", "tudo bem?")):
        payload = FakeWhatsApp.inbound_text_payload(WA_PHONE, "1555", user, text, f"w{n}", ts)
        assert _post_whatsapp(client, bot, payload) == 200
    assert _messages(runtime) == ["oi", "tudo bem?"]
    first = _send(runtime, bot, "k1", "Volte!")
    seen = _statements(runtime, monkeypatch)
    for status in ("delivered", "read", "sent"):
        payload = FakeWhatsApp.status_payload(WA_PHONE, first, status, user, ts)
        assert _post_whatsapp(client, bot, payload) == 200
    assert "SELECT" in seen  # the statuses were applied (in the database, never backwards)
    with runtime.sessions() as s:
        row = s.scalars(select(Delivery)).one()
        assert (row.status, row.platform_status) == ("sent", "read")
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 2

    # Concurrent notifications share one transaction: each moves its own deliveries forward.
    second = _send(runtime, bot, "k2", "Oi?")
    with runtime.sessions.begin() as s:
        write_statuses(
            s,
            [
                Statuses(bot, [StatusUpdate(second, "delivered")], clock.now()),
                Statuses(
                    bot, [StatusUpdate(second, "failed", 131047, "Re-engagement")], clock.now()
                ),
                Statuses(bot, [StatusUpdate(first, "failed", 1, "x")], clock.now()),
                Statuses(bot, [StatusUpdate(second, "read")], clock.now()),
            ],
        )
    with runtime.sessions() as s:
        rows = {r.channel_message_id: r for r in s.scalars(select(Delivery))}
    assert (rows[second].status, rows[second].platform_status) == ("sent", "read")
    assert (rows[first].status, rows[first].platform_status) == ("sent", "read")  # not back


def test_a_crash_before_the_text_is_stored_loses_nothing_when_telegram_retries(
    runtime: Runtime, fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The activity is accepted, then the database connection is lost as the text is sent:
    Telegram gets a 500 and retries; the retry (on a new connection) finds the activity
    recorded (a duplicate) and stores the text, once."""
    client = TestClient(create_app(runtime), raise_server_exceptions=False)
    with client:
        _, bot, secret = _telegram_bot(runtime, client, fake_telegram)
        assert _post_update(client, bot, secret, FakeTelegram.text_update(1, 7, "oi")) == 200
        failures = [1]
        on_loop = psycopg.AsyncConnection.execute

        async def lost(conn: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if str(query).startswith("INSERT INTO inbound_message") and failures:
                failures.pop()
                await conn.close()
                raise psycopg.OperationalError("the database went away")
            return await on_loop(conn, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.AsyncConnection, "execute", lost)
        update = FakeTelegram.text_update(2, 7, "sair")
        assert _post_update(client, bot, secret, update) == 500
        assert runtime.activity.hot_seq(bot, "7") == 2  # accepted before the text failed
        assert _messages(runtime) == ["oi"]
        assert _post_update(client, bot, secret, update) == 200
        assert runtime.activity.hot_seq(bot, "7") == 2  # the retry is a duplicate
        assert _messages(runtime) == ["oi", "sair"]
        assert not failures


def test_statuses_signed_with_a_rotated_app_secret_move_nothing(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    """A notification of statuses alone is recorded by no script: its credentials' stamp is
    read before it is applied, so a secret replaced since is refused at once."""
    key, bot = _whatsapp_bot(runtime)
    ts, user = int(clock.now().timestamp()), WA_USER
    hello = FakeWhatsApp.inbound_text_payload(WA_PHONE, "1555", user, "oi", "w1", ts)
    assert _post_whatsapp(client, bot, hello) == 200  # the bot is held in memory now
    wamid = _send(runtime, bot, "k1", "Volte!")
    r = client.put(
        f"/v1/bots/{bot}/credentials",
        headers={"Authorization": f"Bearer {key}"},
        json={"credentials": {**WA_CREDENTIALS, "app_secret": "a-new-secret"}},
    )
    assert r.status_code == 200
    read = FakeWhatsApp.status_payload(WA_PHONE, wamid, "read", user, ts)
    assert _post_whatsapp(client, bot, read) == 401  # signed with the old secret
    with runtime.sessions() as s:
        assert s.scalars(select(Delivery.platform_status)).one() == "sent"
    body = json.dumps(read).encode()
    headers = {"X-Hub-Signature-256": FakeWhatsApp.signature("a-new-secret", body)}
    assert (
        client.post(f"/webhooks/whatsapp/{bot}", content=body, headers=headers).status_code == 200
    )
    with runtime.sessions() as s:
        assert s.scalars(select(Delivery.platform_status)).one() == "read"


def test_what_the_hot_paths_refuse_gets_the_routes_precise_error_and_writes_nothing(
    runtime: Runtime, client: TestClient, fake_telegram: FakeTelegram
) -> None:
    """With the key and the bot in memory, a request answered beneath the routing when it is
    good is handed to them, body and all, when it is not: the error is theirs, exact."""
    key, bot, secret = _telegram_bot(runtime, client, fake_telegram)
    auth = {"Authorization": f"Bearer {key}"}
    good = {"id": "e1", "type": "message.user", "bot_id": bot, "user_id": "4242"}
    r = client.post("/v1/events", json=good, headers=auth)
    assert (r.status_code, r.json()) == (200, {"accepted": 1, "duplicates": 0})
    assert _post_update(client, bot, secret, FakeTelegram.text_update(1, 4242, "oi")) == 200
    assert runtime.activity.hot_seq(bot, "4242") == 2

    def error(r: Any) -> tuple[int, str | None]:
        return r.status_code, r.json()["field"]

    r = client.post("/v1/events", json={**good, "id": "e2", "user_id": ""}, headers=auth)
    assert error(r) == (422, "user_id")
    r = client.post("/v1/events", json={**good, "id": "e3", "bot_id": bot + 99}, headers=auth)
    assert error(r) == (422, "bot_id")
    r = client.post("/v1/events", content=b'{"id": "e4", "type": ', headers=auth)
    assert error(r) == (422, "body")
    r = client.post("/v1/events", json=good, headers={"Authorization": "Bearer rg_not_a_key"})
    assert r.status_code == 401
    hook = f"/webhooks/telegram/{bot}"
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"}
    r = client.post(hook, content=b'{"update_id": 2, "message": ', headers=headers)
    assert (r.status_code, r.json()["error"]) == (400, "bad_payload")
    assert _post_update(client, bot, "wrong", FakeTelegram.text_update(3, 4242, "x")) == 401
    # Chunked (no Content-Length): the body limit still cuts it, with its own answer.
    too_big = iter([b'{"update_id": 4, "x": "', b"a" * runtime.settings.max_body_bytes, b'"}'])
    assert client.post(hook, content=too_big, headers=headers).status_code == 413

    assert runtime.activity.hot_seq(bot, "4242") == 2
    assert _messages(runtime) == ["oi"]
    # And the good ones still go through, their ids deduplicated as before.
    r = client.post("/v1/events", json=good, headers=auth)
    assert r.json() == {"accepted": 0, "duplicates": 1}
    assert _post_update(client, bot, secret, FakeTelegram.text_update(5, 4242, "ok")) == 200
    assert _messages(runtime) == ["oi", "ok"]


def test_statuses_written_on_the_loop_move_deliveries_forward_only(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    """Concurrent notifications' statuses in one transaction of the loop's own connection:
    each moves its own deliveries, never backwards."""
    _, bot = _whatsapp_bot(runtime)
    ts = int(clock.now().timestamp())
    hello = FakeWhatsApp.inbound_text_payload(WA_PHONE, "1555", WA_USER, "oi", "w1", ts)
    assert _post_whatsapp(client, bot, hello) == 200
    first, second = _send(runtime, bot, "k1", "Volte!"), _send(runtime, bot, "k2", "Oi?")
    now = clock.now()
    notifications = [
        Statuses(bot, [StatusUpdate(second, "delivered")], now),
        Statuses(bot, [StatusUpdate(second, "failed", 131047, "Re-engagement")], now),
        Statuses(bot, [StatusUpdate(first, "failed", 131047, "Re-engagement")], now),
        Statuses(bot, [StatusUpdate(second, "read")], now),
        Statuses(bot, [StatusUpdate("wamid.unknown", "read")], now),
    ]
    dsn = dsn_of(runtime.engine)
    assert dsn is not None

    async def write() -> list[Exception | None]:
        try:
            return await write_statuses_on_loop(dsn, notifications)
        finally:
            await close_on_loop()

    assert asyncio.run(write()) == [None] * 5
    with runtime.sessions() as s:
        rows = {r.channel_message_id: r for r in s.scalars(select(Delivery))}
    assert (rows[second].status, rows[second].platform_status) == ("sent", "read")
    assert (rows[first].status, rows[first].platform_status) == ("failed", "failed")
    assert (rows[first].reason, rows[first].finished_at) == ("window_closed", now)
