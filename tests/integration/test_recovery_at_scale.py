"""Recovery at scale, production mode (PostgreSQL + Redis, real Celery workers on the
`timers` and `recovery` queues, the real Telegram adapter against the fake Bot API):
10,000 quiet users across 20 bots each get exactly their block, once; a quarter answer
after their episode started and never get it. And a worker killed in the middle of a
step leaves no message sent twice and no step unattempted."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Delivery, Episode
from reengage.entrypoints.worker.celery_app import make_celery
from reengage.runtime import Runtime
from reengage.services import campaigns
from reengage.testing.telegram import FakeTelegram
from reengage.timers.executors import CeleryExecutor
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.scheduler import Scheduler
from tests.conftest import REDIS_URL, claim_all, settle
from tests.factories import make_bot, make_org, message
from tests.integration.conftest import Spawn

pytestmark = pytest.mark.slow  # 10,000 users through real workers

LEASE = timedelta(hours=1)  # claims of one round all carry `now + LEASE`: easy to wait for
TEXT = "Seu carrinho espera!"
CAMPAIGN = {
    "threshold": "10m",
    "reentry_cooldown": "7d",
    "steps": [{"schedule": "30m", "blocks": [{"kind": "text", "text": TEXT}]}],
}


class Fleet:
    """`bots` Telegram bots with the campaign, `users` quiet users spread over them, and a
    scheduler that hands due timers to the Celery workers."""

    def __init__(
        self, runtime: Runtime, clock: ManualClock, broker: str, bots: int, users: int
    ) -> None:
        self.runtime, self.clock = runtime, clock
        org = make_org(runtime).org_id
        self.bots = [
            make_bot(runtime, org, name=f"b{i}", credentials={"token": f"{7000 + i}:SCALE"})
            for i in range(bots)
        ]
        with runtime.sessions.begin() as session:
            for bot in self.bots:
                campaigns.put_draft(session, org, bot, CAMPAIGN, clock.now())
                campaigns.publish(session, org, bot, clock.now())
                campaigns.set_enabled(session, org, bot, True, clock.now())
        self.org = org
        self.users = {str(500_000 + i): self.bots[i % bots] for i in range(users)}
        self.say(list(self.users))
        assert isinstance(runtime.timers, RedisTimerStore)
        self.store: RedisTimerStore = runtime.timers
        executor = CeleryExecutor(
            make_celery(runtime.settings.model_copy(update={"broker_url": broker})), runtime
        )
        self.scheduler = Scheduler(
            sessions=runtime.sessions,
            store=runtime.timers,
            executor=executor,
            registry=runtime.registry,
            clock=clock,
            batch=1000,
            lease=LEASE,
            activity=runtime.activity,
        )
        self.redis = redis.Redis.from_url(REDIS_URL)

    def say(self, users: list[str]) -> None:
        now = self.clock.now()
        for start in range(0, len(users), 500):
            batch = users[start : start + 500]
            self.runtime.record(self.org, [message(self.users[u], u, now) for u in batch])
        settle(self.runtime)

    def run_until(self, end: timedelta) -> None:
        """Jump from due timer to due timer (at least 30 s at a time) until `end` from now,
        each round executed by the workers before the next."""
        until = self.clock.now() + end
        while self.clock.now() < until:
            due = self.runtime.timers.next_due()
            step = self.clock.now() + timedelta(seconds=30)
            self.clock.set(min(until, max(due or until, step)))
            self.round()

    def round(self, deadline_s: float = 600) -> None:
        claim_all(self.scheduler)
        zset, _ = self.store.keys
        mark = int((self.clock.now() + LEASE).timestamp() * 1000)
        deadline = time.monotonic() + deadline_s
        while self.redis.zcount(zset, mark - 1, mark + 1):
            assert time.monotonic() < deadline, "the workers did not finish the round"
            time.sleep(0.05)


def workers(spawn: Spawn, telegram_url: str, count: int) -> None:
    for i in range(count):
        spawn(
            f"w{i}",
            queues="timers,recovery",
            pool="prefork",
            concurrency=2,
            telegram_api_base=telegram_url,
        )


@pytest.fixture
def runtime(pg_db: str, make_runtime: Callable[..., Runtime], telegram_url: str) -> Runtime:
    return make_runtime(pg_db, redis_url=REDIS_URL, telegram_api_base=telegram_url)


@pytest.mark.timeout(1200)
def test_ten_thousand_quiet_users_on_twenty_bots_get_exactly_their_blocks(
    runtime: Runtime,
    clock: ManualClock,
    redis_client: redis.Redis,
    broker: str,
    spawn_worker: Spawn,
    fake_telegram: FakeTelegram,
    telegram_url: str,
) -> None:
    users = 10_000
    fleet = Fleet(runtime, clock, broker, bots=20, users=users)
    workers(spawn_worker, telegram_url, 2)
    fleet.run_until(timedelta(minutes=11))  # every episode started (threshold 10 m)
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Episode)) == users
    back = [u for i, u in enumerate(fleet.users) if i % 4 == 0]
    fleet.say(back)  # a quarter answer before the step is due at 40 m
    fleet.run_until(timedelta(hours=1))

    sent = Counter(
        (c.token, c.params["chat_id"], c.params["text"])
        for c in fake_telegram.calls_to("sendMessage")
    )
    assert set(sent.values()) == {1}, "a message went out twice"
    token = {bot: f"{7000 + i}:SCALE" for i, bot in enumerate(fleet.bots)}
    expected = Counter(
        (token[bot], int(user), TEXT) for i, (user, bot) in enumerate(fleet.users.items()) if i % 4
    )
    assert sent == expected
    with runtime.sessions() as s:
        statuses = dict(
            s.execute(select(Episode.status, func.count()).group_by(Episode.status)).all()
        )
        deliveries = dict(
            s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
    assert statuses == {"completed": users * 3 // 4, "cancelled": users // 4}
    assert deliveries == {"sent": users * 3 // 4}


@pytest.mark.timeout(600)
def test_a_worker_killed_during_a_step_sends_nothing_twice_and_loses_no_step(
    runtime: Runtime,
    clock: ManualClock,
    redis_client: redis.Redis,
    broker: str,
    spawn_worker: Spawn,
    fake_telegram: FakeTelegram,
    telegram_url: str,
) -> None:
    fleet = Fleet(runtime, clock, broker, bots=3, users=300)
    doomed = spawn_worker("doomed", queues="timers,recovery", telegram_api_base=telegram_url)
    clock.advance(timedelta(minutes=40, seconds=1))
    claim_all(fleet.scheduler)
    deadline = time.monotonic() + 120
    while len(fake_telegram.calls_to("sendMessage")) < 100:
        assert time.monotonic() < deadline, "the worker sent nothing"
        fleet.scheduler.run_once()  # the step timers the worker publishes
        time.sleep(0.01)
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    assert len(fake_telegram.calls_to("sendMessage")) < 300, "the step was over before the kill"
    workers(spawn_worker, telegram_url, 1)
    clock.advance(LEASE)  # the dead worker's leases run out: its timers are claimed again
    fleet.round()
    fleet.run_until(timedelta(minutes=30))

    sent = Counter((c.token, c.params["chat_id"]) for c in fake_telegram.calls_to("sendMessage"))
    assert set(sent.values()) == {1}, "a message went out twice"
    with runtime.sessions() as s:
        rows = s.execute(select(Delivery.status, Delivery.reason)).all()
    outcomes = Counter(rows)
    # At most one send per bot was in flight when the worker died (it sends its bots side by
    # side, each bot's in turn): recorded as ambiguous, not resent.
    assert outcomes[("failed", "ambiguous")] <= len(set(fleet.users.values()))
    assert outcomes[("sent", None)] + outcomes[("failed", "ambiguous")] == 300
    # Every user got the step once, except perhaps those whose send was cut: their message
    # may or may not have reached Telegram, and it was not sent again.
    assert outcomes[("sent", None)] <= len(sent) <= 300
