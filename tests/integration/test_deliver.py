"""Sending through the delivery record, against the fake Telegram and WhatsApp servers."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from reengage.adapters.channels.telegram import TelegramChannel
from reengage.adapters.clock import AcceleratedClock, ManualClock
from reengage.adapters.db.models import Contact, Delivery, MediaAsset
from reengage.adapters.pacing import InMemoryPacer
from reengage.config import Settings
from reengage.delivery.attempt import DeliveryResult, SendDeps, Want, deliver, send_many
from reengage.delivery.outbox import DeliveryRequest, delivery_timer, enqueue
from reengage.domain.activity import ChannelKind
from reengage.domain.inactivity import inactivity_key
from reengage.domain.outbound import Media, MessageKind, OutboundMessage, Skipped
from reengage.domain.timer import Purpose, Timer
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram
from reengage.testing.time_travel import TimeTravel
from reengage.testing.whatsapp import FakeWhatsApp
from reengage.timers.executors import InlineExecutor
from tests.channel_harness import TG_TOKEN, WA_PHONE, WA_TOKEN
from tests.conftest import metric
from tests.factories import make_bot, make_org, message

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 128


@pytest.fixture
def runtime(
    db_url: str, make_runtime: Callable[..., Runtime], telegram_url: str, whatsapp_url: str
) -> Runtime:
    return make_runtime(db_url, telegram_api_base=telegram_url, whatsapp_api_base=whatsapp_url)


def telegram_bot(runtime: Runtime, org_id: int) -> int:
    return make_bot(runtime, org_id, credentials={"token": TG_TOKEN})


def whatsapp_bot(runtime: Runtime, org_id: int) -> int:
    return make_bot(
        runtime,
        org_id,
        channel=ChannelKind.WHATSAPP,
        credentials={
            "phone_number_id": WA_PHONE,
            "access_token": WA_TOKEN,
            "app_secret": "s3cret",
            "verify_token": "verify-me",
        },
    )


def contact_of(runtime: Runtime, bot_id: int, user_id: str) -> int:
    with runtime.sessions() as s:
        return s.scalars(
            select(Contact.id).where(Contact.bot_id == bot_id, Contact.external_id == user_id)
        ).one()


def send(runtime: Runtime, org: int, bot: int, user: str, key: str, **kw: Any) -> DeliveryResult:
    msg = kw.pop("msg", OutboundMessage(MessageKind.TEXT, "Oi! Ainda por aí?"))
    request = DeliveryRequest(org, bot, contact_of(runtime, bot, user), key, "test", msg, **kw)
    return deliver(runtime.sessions, runtime, runtime.timers, request, runtime.clock.now())


def test_a_delivery_is_sent_once_per_key(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    first = send(runtime, org, bot, "777", "k1")
    again = send(runtime, org, bot, "777", "k1")
    assert (first.status, again.status) == ("sent", "sent")
    assert first.channel_message_id == again.channel_message_id
    assert len(fake_telegram.calls_to("sendMessage")) == 1


def interrupted(
    runtime: Runtime, org: int, bot: int, key: str, requested_at: Any, **extra: Any
) -> None:
    """A delivery an earlier attempt left `sending` (its process died, or still runs): made
    by the outbox (with its once-only key), then claimed."""
    now = runtime.clock.now()
    with runtime.sessions.begin() as s:
        contact = s.scalars(select(Contact.id).where(Contact.bot_id == bot)).one()
        msg = OutboundMessage(MessageKind.TEXT, key)
        delivery_id = enqueue(s, DeliveryRequest(org, bot, contact, key, "test", msg), now)
        row = s.get_one(Delivery, delivery_id)
        row.status, row.attempts, row.sending_at, row.requested_at = "sending", 1, now, requested_at
        for name, value in extra.items():
            setattr(row, name, value)


def test_a_send_that_left_without_an_answer_is_never_repeated(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    interrupted(runtime, org, bot, "k2", requested_at=clock.now() - timedelta(seconds=30))
    result = send(runtime, org, bot, "777", "k2")
    assert (result.status, result.reason) == ("failed", "ambiguous")
    assert fake_telegram.calls_to("sendMessage") == []


def test_a_send_killed_before_its_request_is_sent_once_not_lost(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    interrupted(runtime, org, bot, "k3", requested_at=None)
    assert send(runtime, org, bot, "777", "k3").status == "sent"
    assert send(runtime, org, bot, "777", "k3").status == "sent"
    assert [c.params["text"] for c in fake_telegram.calls_to("sendMessage")] == ["k3"]
    with runtime.sessions() as s:
        row = s.scalars(select(Delivery).where(Delivery.dedup_key == "k3")).one()
    assert (row.attempts, row.requested_at) == (2, clock.now())


def test_a_request_still_in_flight_is_left_to_its_worker(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    left = clock.now() - timedelta(seconds=5)
    interrupted(runtime, org, bot, "k4", requested_at=left)
    result = send(runtime, org, bot, "777", "k4")
    assert (result.status, result.retry_at) == ("sending", left + timedelta(seconds=25))
    assert fake_telegram.calls_to("sendMessage") == []


def test_at_least_once_sends_an_ambiguous_message_once_more_and_no_more(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    old = clock.now() - timedelta(seconds=30)
    interrupted(runtime, org, bot, "k5", requested_at=old, retry_ambiguous=True)
    assert send(runtime, org, bot, "777", "k5").status == "sent"
    interrupted(runtime, org, bot, "k6", requested_at=old, retry_ambiguous=True, ambiguous_at=old)
    assert send(runtime, org, bot, "777", "k6").reason == "ambiguous"  # already retried once
    assert [c.params["text"] for c in fake_telegram.calls_to("sendMessage")] == ["k5"]


def test_an_attempt_that_lost_its_claim_sends_nothing(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    """A stalled worker wakes after its claim was taken over: its in-flight mark fails, so it
    never sends; the attempt that holds the claim does, once."""
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    real = runtime.channel_for

    class TakenOver:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def send(self, chat_id: str, msg: OutboundMessage, context: Any) -> Any:
            with runtime.sessions.begin() as s:  # meanwhile, another run reclaimed it
                row = s.scalars(select(Delivery).where(Delivery.dedup_key == "k7")).one()
                row.attempts += 1
            return self.inner.send(chat_id, msg, context)

    runtime.channel_for = lambda org_id, bot_id: TakenOver(real(org_id, bot_id))  # type: ignore[method-assign]
    result = send(runtime, org, bot, "777", "k7")
    assert result.status == "sending"  # left to the attempt that holds it
    assert fake_telegram.calls_to("sendMessage") == []


def test_a_platform_error_page_is_retried_with_backoff_and_then_sent(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    fake_telegram.fail_next("sendMessage", error_code=502, description="Bad Gateway", times=2)
    first = send(runtime, org, bot, "777", "k8")
    assert (first.status, first.reason) == ("scheduled", "server_error")
    assert first.retry_at == clock.now() + timedelta(seconds=5)
    clock.set(first.retry_at)
    second = send(runtime, org, bot, "777", "k8")
    assert second.retry_at == clock.now() + timedelta(seconds=10)  # the wait grows
    clock.set(second.retry_at)
    assert send(runtime, org, bot, "777", "k8").status == "sent"


def test_a_429_is_handed_back_to_the_delivery_timer_never_slept(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    """A worker never waits out `retry_after`: the delivery comes back at its time, and every
    worker holds off that chat until then."""
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    fake_telegram.rate_limit_next("sendMessage", 7)
    before = clock.now()
    limited = metric("reengage_platform_errors_total", channel="telegram", kind="rate_limited")
    held = metric(
        "reengage_pacing_holds_total", channel="telegram", bot=str(bot), hold="handed_back"
    )
    result = send(runtime, org, bot, "777", "k1")
    assert (result.status, result.reason) == ("scheduled", "rate_limited")
    assert clock.now() == before  # nothing slept
    assert result.retry_at == before + timedelta(seconds=7)
    retry = runtime.timers.get(f"delivery:{result.delivery_id}")
    assert retry is not None
    assert retry.due_at == before + timedelta(seconds=7)
    other = send(runtime, org, bot, "777", "k2")  # the chat is held for every sender
    assert (other.status, other.reason) == ("scheduled", "paced")
    assert other.retry_at is not None
    assert other.retry_at >= before + timedelta(seconds=7)
    assert len(fake_telegram.calls_to("sendMessage")) == 1
    assert metric("reengage_platform_errors_total", channel="telegram", kind="rate_limited") == (
        limited + 1
    )
    assert metric(
        "reengage_pacing_holds_total", channel="telegram", bot=str(bot), hold="handed_back"
    ) == (held + 1)
    clock.set(other.retry_at + timedelta(seconds=2))  # past the hold and k2's slot
    assert send(runtime, org, bot, "777", "k1").status == "sent"  # the retry goes through


def test_a_long_429_goes_back_to_the_caller(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    fake_telegram.rate_limit_next("sendMessage", 3600)
    result = send(runtime, org, bot, "777", "k1")
    assert (result.status, result.reason) == ("scheduled", "rate_limited")
    assert result.retry_at == clock.now() + timedelta(seconds=3600)
    clock.advance(timedelta(hours=1))
    assert send(runtime, org, bot, "777", "k1").status == "sent"  # the retry goes through


def test_a_user_who_blocked_the_bot_stops_everything(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    assert runtime.timers.get(inactivity_key(bot, "777")) is not None
    fake_telegram.block(777)
    result = send(runtime, org, bot, "777", "k1")
    assert (result.status, result.reason, result.blocked) == ("failed", "blocked", True)
    assert runtime.timers.get(inactivity_key(bot, "777")) is None
    with runtime.sessions() as s:
        assert s.scalars(select(Contact.blocked_at)).one() == clock.now()
    calls = len(fake_telegram.calls)
    assert (send(runtime, org, bot, "777", "k2").status, len(fake_telegram.calls)) == (
        "skipped",
        calls,
    )


def test_media_is_uploaded_once_per_bot(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    org = make_org(runtime).org_id
    bots = [telegram_bot(runtime, org), telegram_bot(runtime, org)]
    with runtime.sessions.begin() as s:
        asset = MediaAsset(
            org_id=org,
            filename="promo.png",
            content_type="image/png",
            size=len(PNG),
            sha256="x",
            content=PNG,
            created_at=clock.now(),
        )
        s.add(asset)
        s.flush()
        asset_id = asset.id
    photo = OutboundMessage(MessageKind.PHOTO, "Promo", Media(asset_id=asset_id))
    for bot in bots:
        runtime.record(org, [message(bot, "1", clock.now()), message(bot, "2", clock.now())])
        for user in ("1", "2"):
            assert send(runtime, org, bot, user, f"{bot}:{user}", msg=photo).status == "sent"
    uploads = [c for c in fake_telegram.calls_to("sendPhoto") if c.files]
    assert len(fake_telegram.calls_to("sendPhoto")) == 4
    assert len(uploads) == 2  # once per bot: a file_id is only valid for the bot that got it


def test_whatsapp_outside_the_window_is_skipped_without_a_request(
    runtime: Runtime, fake_whatsapp: FakeWhatsApp, clock: ManualClock
) -> None:
    org = make_org(runtime).org_id
    bot = whatsapp_bot(runtime, org)
    runtime.record(org, [message(bot, "5511999", clock.now())])
    conv_id = runtime_conversation(runtime)
    assert send(runtime, org, bot, "5511999", "in", conversation_id=conv_id).status == "sent"
    clock.advance(timedelta(hours=24, seconds=1))
    late = send(runtime, org, bot, "5511999", "late", conversation_id=conv_id)
    assert (late.status, late.reason) == ("skipped", "window_closed")
    assert len(fake_whatsapp.calls_to("messages")) == 1


def test_whatsapp_131047_is_window_closed_not_a_retry(
    runtime: Runtime, fake_whatsapp: FakeWhatsApp, clock: ManualClock
) -> None:
    org = make_org(runtime).org_id
    bot = whatsapp_bot(runtime, org)
    runtime.record(org, [message(bot, "5511999", clock.now())])
    fake_whatsapp.reengagement_next()
    result = send(runtime, org, bot, "5511999", "k", conversation_id=runtime_conversation(runtime))
    assert (result.status, result.reason) == ("skipped", "window_closed")


def test_telegram_messages_older_than_48h_are_not_deleted(
    fake_telegram: FakeTelegram, telegram_url: str, clock: ManualClock
) -> None:
    channel = TelegramChannel(
        TG_TOKEN, bot_key="9", clock=clock, pacer=InMemoryPacer(), api_base=telegram_url
    )
    sent_at = clock.now() - timedelta(hours=48, minutes=1)
    assert channel.delete("777", "12", sent_at, clock.now()) == Skipped("too_old_to_delete")
    assert fake_telegram.calls == []


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        ("Bad Request: message can't be deleted for everyone", "delete_refused"),
        ("Bad Request: message to delete not found", "already_deleted"),
    ],
)
def test_a_refused_delete_is_skipped_with_its_reason(
    fake_telegram: FakeTelegram,
    telegram_url: str,
    clock: ManualClock,
    description: str,
    reason: str,
) -> None:
    channel = TelegramChannel(
        TG_TOKEN, bot_key="9", clock=clock, pacer=InMemoryPacer(), api_base=telegram_url
    )
    fake_telegram.fail_next("deleteMessage", error_code=400, description=description)
    assert channel.delete("777", "12", clock.now(), clock.now()) == Skipped(reason)


def runtime_conversation(runtime: Runtime) -> int:
    from reengage.adapters.db.models import Conversation

    with runtime.sessions() as s:
        return s.scalars(select(Conversation.id)).one()


def test_a_long_pacing_wait_is_handed_back_with_its_slot_held(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    """A worker does not sleep through a chat's 1 s gap: the delivery timer comes back when
    the reserved slot is due, and that retry sends without queueing for a slot again."""
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "778", clock.now())])
    contact = contact_of(runtime, bot, "778")
    with runtime.sessions.begin() as s:
        ids = [
            enqueue(
                s,
                DeliveryRequest(
                    org, bot, contact, f"k{i}", "test", OutboundMessage(MessageKind.TEXT, f"m{i}")
                ),
                clock.now(),
            )
            for i in range(2)
        ]
    handle = runtime.registry[Purpose.DELIVERY].handle

    def fire(timer: Timer) -> list[Timer]:
        return list(handle(timer, clock.now()).timers)

    assert fire(delivery_timer(ids[0], clock.now())) == []
    started = time.monotonic()
    [retry] = fire(delivery_timer(ids[1], clock.now()))
    assert time.monotonic() - started < 0.5
    assert retry.payload == {"delivery_id": ids[1], "slot_at": retry.payload["slot_at"]}
    assert retry.due_at == runtime.clock.at_real(float(retry.payload["slot_at"] or 0))
    # one message every 1.05 s in a chat (Telegram: about 1/s; 5 % spare for jitter)
    assert retry.due_at - clock.now() == timedelta(seconds=1.05)
    with runtime.sessions() as s:
        row = s.get_one(Delivery, ids[1])
        assert (row.status, row.reason) == ("scheduled", "paced")
    assert [c.params["text"] for c in fake_telegram.calls_to("sendMessage")] == ["m0"]
    clock.set(retry.due_at)
    started = time.monotonic()
    assert fire(retry) == []
    assert time.monotonic() - started < 0.5  # no second wait for a slot
    assert [c.params["text"] for c in fake_telegram.calls_to("sendMessage")] == ["m0", "m1"]


def test_a_fast_demo_clock_never_shortens_the_platforms_waits(
    sqlite_template: Path, tmp_path: Path, fake_telegram: FakeTelegram, telegram_url: str
) -> None:
    """With time 600x faster, a 429's 2 s and a chat's 1.05 s gap are still real seconds:
    20 and 10.5 minutes of the demo's clock."""
    path = tmp_path / "demo.db"
    shutil.copy(sqlite_template, path)
    clock = AcceleratedClock(600)
    runtime = Runtime.build(
        Settings(database_url=f"sqlite:///{path}", telegram_api_base=telegram_url), clock=clock
    )
    try:
        org = make_org(runtime).org_id
        bot = telegram_bot(runtime, org)
        chats = ["777", "778", "779", "780"]
        runtime.record(org, [message(bot, chat, clock.now()) for chat in chats])
        handle = runtime.registry[Purpose.DELIVERY].handle

        def fire(user: str, key: str) -> list[Timer]:
            """Send one message now; the timers that come back for it."""
            contact = contact_of(runtime, bot, user)
            text = OutboundMessage(MessageKind.TEXT, "Oi")
            with runtime.sessions.begin() as s:
                delivery = enqueue(
                    s, DeliveryRequest(org, bot, contact, key, "t", text), clock.now()
                )
            return list(handle(delivery_timer(delivery, clock.now()), clock.now()).timers)

        fake_telegram.rate_limit_next("sendMessage", 2)
        [limited] = fire("777", "a")
        assert 1100 < (limited.due_at - clock.now()).total_seconds() <= 1200
        for chat in chats[1:]:
            assert fire(chat, f"b{chat}") == []  # sent
            sent = time.monotonic()
            again = fire(chat, f"c{chat}")  # the same chat again: its next slot is 1.05 real s away
            if again or time.monotonic() - sent < 0.75:
                break
            # The machine stalled for most of the gap between the two (it was slept through,
            # not handed back): the same two sends in another chat.
        [paced] = again
        assert 550 < (paced.due_at - clock.now()).total_seconds() <= 630
    finally:
        runtime.close()


def test_an_operator_reviews_ambiguous_sends_and_sends_one_again(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    from fastapi.testclient import TestClient

    from reengage.entrypoints.api.app import create_app

    org = make_org(runtime)
    bot = telegram_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, "777", clock.now())])
    interrupted(runtime, org.org_id, bot, "lost", requested_at=clock.now() - timedelta(minutes=1))
    assert send(runtime, org.org_id, bot, "777", "lost").reason == "ambiguous"
    headers = {"Authorization": f"Bearer {org.api_key}"}
    with TestClient(create_app(runtime)) as client:
        listed = client.get(
            "/v1/deliveries", params={"status": "failed", "reason": "ambiguous"}, headers=headers
        ).json()
        assert [d["dedup_key"] for d in listed] == ["lost"]
        again = client.post(f"/v1/deliveries/{listed[0]['id']}/resend", headers=headers)
        assert again.status_code == 202
        twice = client.post(f"/v1/deliveries/{listed[0]['id']}/resend", headers=headers)
        assert twice.json()["id"] == again.json()["id"]  # the re-send is itself idempotent
        [claimed] = runtime.timers.claim_due(clock.now(), 10, timedelta(seconds=30))
        InlineExecutor(runtime).submit([claimed], clock.now())
        assert [c.params["text"] for c in fake_telegram.calls_to("sendMessage")] == ["lost"]
        refused = client.post(f"/v1/deliveries/{again.json()['id']}/resend", headers=headers)
        assert refused.status_code == 422  # a sent delivery is not sent again
        metrics = client.get("/metrics").text
    ambiguous = 'channel="telegram",purpose="test",reason="ambiguous",status="failed"'
    assert f"reengage_deliveries_total{{{ambiguous}}}" in metrics
    assert f'reengage_bot_deliveries_total{{bot="{bot}",status="failed"}}' in metrics


def test_retries_stop_when_the_message_is_no_longer_valid(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    """Surely-unsent sends are retried only while they still make sense: here until its
    send window closes, 30 s away; the retry that would land past it is not made."""
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    fake_telegram.fail_next("sendMessage", error_code=503, description="Unavailable", times=10)
    until = clock.now() + timedelta(seconds=30)
    result = send(runtime, org, bot, "777", "late", valid_until=until)
    while result.status == "scheduled":
        assert result.retry_at is not None
        clock.set(result.retry_at)
        result = send(runtime, org, bot, "777", "late", valid_until=until)
    assert (result.status, result.reason) == ("skipped", "expired")
    assert len(fake_telegram.calls_to("sendMessage")) == 3  # at 0 s, 5 s and 15 s


def test_a_rotated_token_is_used_from_the_next_send_and_decrypted_once(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    from fastapi.testclient import TestClient

    from reengage.entrypoints.api.app import create_app

    org = make_org(runtime)
    bot = telegram_bot(runtime, org.org_id)
    users = ["1", "2", "3", "4"]  # one per send: a chat takes one message a second
    runtime.record(org.org_id, [message(bot, u, clock.now()) for u in users])
    assert send(runtime, org.org_id, bot, "1", "a").status == "sent"
    assert send(runtime, org.org_id, bot, "2", "b").status == "sent"
    assert runtime.credentials.decryptions == 1  # kept per bot, not decrypted per send
    fake_telegram.revoke_token(TG_TOKEN)  # the operator revoked it with @BotFather
    assert send(runtime, org.org_id, bot, "3", "c").reason == "unauthorized"
    new_token = "123456:ROTATED-token"
    headers = {"Authorization": f"Bearer {org.api_key}"}
    with TestClient(create_app(runtime)) as client:
        path = f"/v1/bots/{bot}/credentials"
        missing = client.put(path, json={"credentials": {"tok": "x"}}, headers=headers)
        assert (missing.status_code, missing.json()["field"]) == (422, "credentials.token")
        stranger = make_org(runtime, "Other").api_key
        other = {"Authorization": f"Bearer {stranger}"}
        put = {"credentials": {"token": new_token}}
        assert client.put(path, json=put, headers=other).status_code == 404
        done = client.put(path, json=put, headers=headers)
        assert done.status_code == 200, done.text
        assert "ROTATED" not in done.text
    assert send(runtime, org.org_id, bot, "4", "d").status == "sent"
    assert [c.token for c in fake_telegram.calls_to("sendMessage")][-1] == new_token
    assert runtime.credentials.decryptions == 2


def test_a_taken_delivery_whose_timer_was_lost_comes_back_with_the_rebuild(
    runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    """The worker took the row (`sending`) and died before its request, and the timer store
    lost its timer (Redis restarted empty): the rebuild puts it back and it is sent, once."""
    from reengage.timers.rebuild import rebuild_timers

    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    runtime.record(org, [message(bot, "777", clock.now())])
    interrupted(runtime, org, bot, "taken", requested_at=None)  # no timer of its own
    assert rebuild_timers(runtime.sessions, runtime.timers, runtime.registry) == 1
    TimeTravel(runtime, clock).drain()
    assert [c.params["text"] for c in fake_telegram.calls_to("sendMessage")] == ["taken"]
    assert rebuild_timers(runtime.sessions, runtime.timers, runtime.registry) == 0


def test_a_bots_next_request_leaves_while_the_answer_before_it_is_written(
    pg_db: str, make_runtime: Callable[..., Runtime], telegram_url: str, fake_telegram: FakeTelegram
) -> None:
    """Senders side by side (PostgreSQL): a plain answer is committed by the answers' own
    thread while its bot's next request leaves, and the batch returns once every answer is
    committed (nothing is reported before it is recorded)."""
    runtime = make_runtime(pg_db, telegram_api_base=telegram_url)
    assert runtime.send_pool.size > 1
    org = make_org(runtime).org_id
    bot = telegram_bot(runtime, org)
    now = runtime.clock.now()
    runtime.record(org, [message(bot, "701", now), message(bot, "702", now)])
    runtime.activity.flush(now)
    text = OutboundMessage(MessageKind.TEXT, "Oi! Ainda por aí?")
    with runtime.sessions.begin() as s:
        ids = [
            enqueue(s, DeliveryRequest(org, bot, contact_of(runtime, bot, u), u, "test", text), now)
            for u in ("701", "702")
        ]
    answers_began_with: list[int] = []  # messages the platform had accepted at each answer

    def held_answer(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if sql.startswith("UPDATE delivery SET status = 'sent'"):
            deadline = time.monotonic() + 5
            while fake_telegram.message_count() < 2 and time.monotonic() < deadline:
                time.sleep(0.01)  # the first answer waits for the bot's second request
            answers_began_with.append(fake_telegram.message_count())

    event.listen(runtime.engine, "before_cursor_execute", held_answer)
    try:
        deps = SendDeps(
            runtime.sessions,
            runtime,
            runtime.activity,
            runtime.clock,
            runtime.send_pool,
            runtime.media,
            runtime.request_writes,
        )
        attempts = send_many(deps, [Want(i) for i in ids], now)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", held_answer)
    assert [a.result.status for a in attempts] == ["sent", "sent"]
    assert answers_began_with
    assert answers_began_with[0] == 2
    with runtime.sessions() as s:
        rows = s.execute(select(Delivery.status).where(Delivery.id.in_(ids))).scalars().all()
    assert rows == ["sent", "sent"]


def test_every_send_thread_can_hold_a_connection_at_once(
    pg_db: str, make_runtime: Callable[..., Runtime]
) -> None:
    """Answers that are not plain are written by their send threads' own transactions: the
    connection pool has room for all of them, beside the batch's and the group commits'."""
    runtime = make_runtime(pg_db, send_concurrency=48)
    assert runtime.send_pool.size == 48
    held = [runtime.engine.connect() for _ in range(48 + 2)]  # none waits for another
    try:
        assert all(not c.closed for c in held)
    finally:
        for c in held:
            c.close()
