"""Pacing holds where it counts: when each request reaches the platform. A fake Telegram that
enforces its flood control in real time sees a burst from two schedulers sharing Redis, and
refuses nothing."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import timedelta
from itertools import pairwise

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
from tests.channel_harness import TG_TOKEN
from tests.conftest import REDIS_URL, settle
from tests.factories import make_bot, make_org, message

pytestmark = pytest.mark.slow  # paces in real time

CHATS, BLOCKS = 100, 2


def test_a_burst_against_a_rate_enforcing_platform_gets_no_429(
    pg_db: str, redis_client: redis.Redis, fake_telegram: FakeTelegram, telegram_url: str
) -> None:
    settings = Settings(
        database_url=pg_db, redis_url=REDIS_URL, broker_url=None, telegram_api_base=telegram_url
    )
    runtime = Runtime.build(settings, clock=SystemClock())
    try:
        flood = fake_telegram.enforce_flood_control(per_bot=30, chat_gap=1.0)
        org = make_org(runtime).org_id
        bot = make_bot(runtime, org, credentials={"token": TG_TOKEN})
        now = runtime.clock.now()
        runtime.record(org, [message(bot, str(1000 + c), now) for c in range(CHATS)])
        settle(runtime)
        timers = []
        with runtime.sessions.begin() as s:
            contacts = dict(s.execute(select(Contact.external_id, Contact.id)).tuples().all())
            for c in range(CHATS):
                user = str(1000 + c)
                for b in range(BLOCKS):  # a step's two blocks, both due now
                    text = OutboundMessage(MessageKind.TEXT, f"{user}/{b}")
                    request = DeliveryRequest(org, bot, contacts[user], f"{user}:{b}", "test", text)
                    timers.append(delivery_timer(enqueue(s, request, now), now))
        runtime.timers.schedule(timers)
        stop = threading.Event()
        schedulers = [
            Scheduler(
                sessions=runtime.sessions,
                store=runtime.timers,
                executor=InlineExecutor(runtime),
                registry=runtime.registry,
                clock=runtime.clock,
                batch=50,
                lease=timedelta(seconds=30),
                poll=timedelta(milliseconds=5),
            )
            for _ in range(2)
        ]
        threads = [threading.Thread(target=s.run, args=(stop,)) for s in schedulers]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(sent_texts(fake_telegram)) < CHATS * BLOCKS:
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(10)
        assert flood.refused == []  # no 429 caused by our own pacing
        assert sorted(sent_texts(fake_telegram)) == sorted(
            f"{1000 + c}/{b}" for c in range(CHATS) for b in range(BLOCKS)
        )
        with runtime.sessions() as s:
            assert set(s.scalars(select(Delivery.status))) == {"sent"}
        by_chat: dict[int, list[float]] = defaultdict(list)
        for call in accepted(fake_telegram):
            by_chat[call.params["chat_id"]].append(call.at.timestamp())
        gaps = [b - a for times in by_chat.values() for a, b in pairwise(times)]
        assert min(gaps) >= 1.0
    finally:
        runtime.close()


def accepted(fake: FakeTelegram) -> list[TelegramCall]:
    refused = {id(c) for c in (fake.flood.refused if fake.flood else [])}
    return [c for c in fake.calls_to("sendMessage") if id(c) not in refused]


def sent_texts(fake: FakeTelegram) -> list[str]:
    return [str(c.params["text"]) for c in accepted(fake)]
