"""A bot disabled, enabled again, deleted: what runs for it stops and resumes, end to end
(HTTP API, the Telegram fake, the real scheduler on a manual clock)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from reengage.adapters.db.models import Bot, Delivery, Episode
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram, TelegramError
from tests.channel_harness import TG_TOKEN
from tests.e2e.harness import MODES, runtime_in_mode
from tests.e2e.shop import Shop
from tests.factories import make_org

STEP_1 = ["Ei, esqueceu algo no carrinho?", "10% off"]


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path)


def _deliveries(shop: Shop) -> list[tuple[str, str | None]]:
    with shop.runtime.sessions() as session:
        rows = session.scalars(select(Delivery).order_by(Delivery.id)).all()
        return [(d.status, d.reason) for d in rows]


def test_a_disabled_bot_sends_nothing_and_resumes_when_enabled(shop: Shop) -> None:
    shop.launch()
    shop.event("201")
    shop.wait(timedelta(minutes=11))  # silent past the 10-minute threshold: episode running
    [episode] = shop.episodes()
    assert episode["status"] == "running"
    disabled = shop.call("post", f"/v1/bots/{shop.bot}/disable")
    assert disabled["disabled"] is True
    assert shop.call("get", f"/v1/bots/{shop.bot}")["disabled"] is True
    shop.wait(timedelta(minutes=40))  # the step's timer fires while disabled
    assert shop.heard("201") == []
    assert shop.fake.calls_to("sendMessage") == []
    assert shop.episodes()[0]["status"] == "running"  # paused, not ended
    shop.event("202")  # events are still recorded while disabled
    shop.says("205", "oi")  # and webhooks answered 200 (asserted), recorded, not acted on
    shop.wait(timedelta(minutes=20))
    assert shop.heard("202") == []
    assert shop.heard("205") == []
    assert "205" in {c["user_id"] for c in shop.call("get", "/v1/conversations")}

    enabled = shop.call("post", f"/v1/bots/{shop.bot}/enable")
    assert enabled["disabled"] is False
    shop.wait(timedelta(minutes=1))
    assert shop.heard("201") == STEP_1  # what came due meanwhile runs now
    shop.wait(timedelta(minutes=30))
    assert shop.heard("202") == STEP_1


def test_a_message_already_queued_is_skipped_once_the_bot_is_disabled(shop: Shop) -> None:
    shop.launch()
    shop.event("203")
    shop.wait(timedelta(minutes=40, seconds=1))  # the text went; its photo waits 5 s
    assert shop.heard("203") == STEP_1[:1]
    shop.call("post", f"/v1/bots/{shop.bot}/disable")
    shop.wait(timedelta(seconds=30))
    assert shop.heard("203") == STEP_1[:1]
    assert ("skipped", "bot_disabled") in _deliveries(shop)
    shop.call("post", f"/v1/bots/{shop.bot}/enable")
    shop.wait(timedelta(minutes=5))
    assert shop.heard("203") == STEP_1[:1]  # a skipped message is not sent later


def test_a_deleted_bot_ends_its_episodes_and_answers_404_everywhere(
    shop: Shop, runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    shop.launch()
    shop.call("post", f"/v1/bots/{shop.bot}/webhook")
    shop.event("204")
    shop.wait(timedelta(minutes=11))
    other = shop.call("post", "/v1/bots", {"name": "Outra", **Shop.CHANNEL})["id"]
    r = shop.client.delete(f"/v1/bots/{shop.bot}", headers=shop.headers)
    assert r.status_code == 204, r.text
    [episode] = shop.episodes()  # history stays
    assert (episode["status"], episode["end_reason"]) == ("stopped", "bot_deleted")
    shop.wait(timedelta(days=1))
    assert shop.heard("204") == []
    assert fake_telegram.calls_to("sendMessage") == []
    for method, path in [
        ("get", f"/v1/bots/{shop.bot}"),
        ("patch", f"/v1/bots/{shop.bot}"),
        ("post", f"/v1/bots/{shop.bot}/disable"),
        ("post", f"/v1/bots/{shop.bot}/enable"),
        ("delete", f"/v1/bots/{shop.bot}"),
        ("get", f"/v1/bots/{shop.bot}/campaign/results"),
    ]:
        body = {"name": "x"} if method == "patch" else None
        answer = shop.client.request(method, path, json=body, headers=shop.headers)
        assert answer.status_code == 404, (method, path, answer.text)
    assert [b["id"] for b in shop.call("get", "/v1/bots")] == [other]
    event = {"id": "late", "type": "message.user", "bot_id": shop.bot, "user_id": "204"}
    assert shop.client.post("/v1/events", json=event, headers=shop.headers).status_code >= 400
    secret = str(fake_telegram.calls_to("setWebhook")[-1].params["secret_token"])
    hook = shop.client.post(
        f"/webhooks/telegram/{shop.bot}",
        json=FakeTelegram.text_update(99, 204, "oi"),
        headers={"X-Telegram-Bot-Api-Secret-Token": secret},
    )
    assert hook.status_code == 404
    # Telegram was told to stop posting: no webhook is registered for the bot any more.
    [forget] = fake_telegram.calls_to("deleteWebhook")
    assert forget.params == {"drop_pending_updates": True}
    with pytest.raises(TelegramError):
        fake_telegram.post_update(TG_TOKEN, FakeTelegram.text_update(100, 204, "oi"), reach="")
    with runtime.sessions() as session:
        bot = session.get_one(Bot, shop.bot)
        assert bot.deleted_at is not None
        assert bot.credentials is None
        assert session.scalars(select(Episode.end_reason)).all() == ["bot_deleted"]


def test_another_organizations_bot_cannot_be_disabled_or_deleted(shop: Shop) -> None:
    stranger = {"Authorization": f"Bearer {make_org(shop.runtime, 'Other').api_key}"}
    for method, path in [
        ("post", f"/v1/bots/{shop.bot}/disable"),
        ("delete", f"/v1/bots/{shop.bot}"),
    ]:
        assert shop.client.request(method, path, headers=stranger).status_code == 404
    assert shop.call("get", f"/v1/bots/{shop.bot}")["disabled"] is False


def test_a_bot_is_deleted_even_when_telegram_refuses_to_drop_its_webhook(
    shop: Shop, runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    shop.call("post", f"/v1/bots/{shop.bot}/webhook")
    fake_telegram.revoke_token(TG_TOKEN)  # the owner revoked it in @BotFather first
    r = shop.client.delete(f"/v1/bots/{shop.bot}", headers=shop.headers)
    assert r.status_code == 204, r.text
    assert len(fake_telegram.calls_to("deleteWebhook")) == 1
    assert shop.client.get(f"/v1/bots/{shop.bot}", headers=shop.headers).status_code == 404
    with runtime.sessions() as session:
        assert session.get_one(Bot, shop.bot).deleted_at is not None


def test_a_bot_without_a_webhook_is_deleted_without_asking_telegram(
    shop: Shop, fake_telegram: FakeTelegram
) -> None:
    assert shop.client.delete(f"/v1/bots/{shop.bot}", headers=shop.headers).status_code == 204
    assert fake_telegram.calls_to("deleteWebhook") == []
