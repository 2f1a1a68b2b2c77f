"""Telegram's paid broadcast: a bot that pays sends with `allow_paid_broadcast` past the free 30
messages a second, paced under 1,000; a bot that does not stays under 30. The fake enforces
both limits in real time, as Telegram does."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select

from reengage.adapters.clock import SystemClock
from reengage.adapters.db.models import Contact, Delivery
from reengage.config import Settings
from reengage.delivery.outbox import DeliveryRequest, delivery_timer, enqueue
from reengage.domain.outbound import MessageKind, OutboundMessage
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram, TelegramCall
from reengage.timers.executors import InlineExecutor
from reengage.timers.scheduler import Scheduler
from tests.conftest import REDIS_URL, settle
from tests.factories import make_bot, make_org, message

pytestmark = pytest.mark.slow  # paces in real time

CHATS = 90
PAID_TOKEN, FREE_TOKEN = "777001:PAID", "777002:FREE"


def busiest_second(calls: list[TelegramCall]) -> int:
    times = sorted(c.at.timestamp() for c in calls)
    return max(sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times))


def test_a_paying_bot_goes_past_thirty_a_second_and_a_free_one_does_not(
    pg_db: str, redis_client: redis.Redis, fake_telegram: FakeTelegram, telegram_url: str
) -> None:
    settings = Settings(
        database_url=pg_db, redis_url=REDIS_URL, broker_url=None, telegram_api_base=telegram_url
    )
    runtime = Runtime.build(settings, clock=SystemClock())
    try:
        flood = fake_telegram.enforce_flood_control(per_bot=30, chat_gap=1.0)
        org = make_org(runtime).org_id
        paid = make_bot(runtime, org, credentials={"token": PAID_TOKEN}, paid_broadcast=True)
        free = make_bot(runtime, org, credentials={"token": FREE_TOKEN})
        now = runtime.clock.now()
        users = {bot: [f"{bot}{c:03}" for c in range(CHATS)] for bot in (paid, free)}
        runtime.record(org, [message(b, u, now) for b, us in users.items() for u in us])
        settle(runtime)
        timers = []
        with runtime.sessions.begin() as s:
            contacts = dict(s.execute(select(Contact.external_id, Contact.id)).tuples().all())
            for bot, chats in users.items():
                for user in chats:
                    text = OutboundMessage(MessageKind.TEXT, f"oi {user}")
                    request = DeliveryRequest(org, bot, contacts[user], user, "test", text)
                    timers.append(delivery_timer(enqueue(s, request, now), now))
        runtime.timers.schedule(timers)
        scheduler = Scheduler(
            sessions=runtime.sessions,
            store=runtime.timers,
            executor=InlineExecutor(runtime),
            registry=runtime.registry,
            clock=runtime.clock,
            batch=500,
            lease=timedelta(seconds=30),
        )
        stop = threading.Event()
        thread = threading.Thread(target=scheduler.run, args=(stop,))
        thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(fake_telegram.calls_to("sendMessage")) < (
            2 * CHATS + len(flood.refused)
        ):
            time.sleep(0.1)
        stop.set()
        thread.join(10)
        assert flood.refused == []
        with runtime.sessions() as s:
            assert set(s.scalars(select(Delivery.status))) == {"sent"}
        calls = {
            token: [c for c in fake_telegram.calls_to("sendMessage") if c.token == token]
            for token in (PAID_TOKEN, FREE_TOKEN)
        }
        assert all(c.params.get("allow_paid_broadcast") is True for c in calls[PAID_TOKEN])
        assert all("allow_paid_broadcast" not in c.params for c in calls[FREE_TOKEN])
        assert busiest_second(calls[PAID_TOKEN]) > 30
        assert busiest_second(calls[FREE_TOKEN]) <= 30
    finally:
        runtime.close()
