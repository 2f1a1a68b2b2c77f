"""A real scheduler and a real prefork Celery worker, each serving its own `/metrics`, scraped
during and after a run that sends reminders to the fake Telegram: the backlog the scheduler
reports drains, the deliveries the worker's children count reach the parent's scrape."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis

from reengage.adapters.clock import ManualClock
from reengage.domain.activity import EventType
from reengage.domain.policy import Level
from reengage.runtime import Runtime
from reengage.services.policies import Scope, put_policy
from reengage.testing.telegram import FakeTelegram
from tests.channel_harness import TG_TOKEN
from tests.conftest import REDIS_URL, free_port, settle
from tests.factories import make_bot, make_org, message
from tests.integration.conftest import Scrape, Spawn, scrape, wait_until

USERS = 20
BATCH = 5  # what the scheduler claims while no worker takes its tasks: the rest waits
SENT = "reengage_deliveries_total[('channel', 'telegram'), ('purpose', 'reminder'), "
SENT += "('reason', ''), ('status', 'sent')]"
DUE = "reengage_timers_due[]"
OLDEST = "reengage_timers_oldest_due_age_seconds[]"
CLAIMED = "reengage_timers_claimed_total[('claim', 'first')]"
LATENESS = "reengage_timer_lateness_seconds_count[]"


def users_gone_quiet(runtime: Runtime, clock: ManualClock) -> int:
    """USERS conversations whose reminder (2 minutes after the bot spoke) is a minute late."""
    clock.advance(datetime.now(UTC) - clock.now())  # the processes run on the real clock
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org, credentials={"token": TG_TOKEN}, inactivity_threshold=timedelta(0))
    with runtime.sessions.begin() as session:
        put_policy(
            session,
            org,
            Scope(Level.BOT, bot),
            {
                "enabled": True,
                "timeout": "5m",
                "action": "close",
                "applies_to": ["bot_wait"],
                "reminders": [{"after": "2m", "text": "Ainda aí?"}],
            },
            clock.now(),
        )
    at = clock.now() - timedelta(minutes=3)
    events = []
    for i in range(USERS):
        events += [
            message(bot, str(1000 + i), at),
            message(bot, str(1000 + i), at, EventType.BOT_MESSAGE),
        ]
    runtime.record(org, events)
    settle(runtime)
    return bot


def test_the_scheduler_and_a_worker_serve_moving_backlog_and_delivery_series(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
    spawn_process: Spawn,
    spawn_worker: Spawn,
    fake_telegram: FakeTelegram,
    telegram_url: str,
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL, telegram_api_base=telegram_url)
    bot = users_gone_quiet(runtime, clock)
    scheduler_port, worker_port = free_port(), free_port()
    spawn_process(
        "scheduler",
        ["scheduler", "--metrics-port", str(scheduler_port)],
        scheduler_batch=str(BATCH),
        timer_lease="60s",
    )
    # No worker yet: the scheduler holds its first claims in flight and leaves the rest due.
    wait_until(lambda: scrape(scheduler_port).get(DUE, 0) > 0, timeout=30)
    before: Scrape = scrape(scheduler_port)
    assert before[DUE] == USERS - BATCH
    assert before[OLDEST] >= 60  # due a minute ago at least

    spawn_worker(
        "worker",
        pool="prefork",
        concurrency=2,
        args=["--metrics-port", str(worker_port)],
        telegram_api_base=telegram_url,
    )
    wait_until(lambda: bool(scrape(worker_port)), timeout=30)
    worker_before = scrape(worker_port)

    # Each user's reminder, sent by one of the worker's two children, counted by the parent.
    wait_until(lambda: scrape(worker_port).get(SENT) == USERS, timeout=60)
    assert len(fake_telegram.calls_to("sendMessage")) == USERS
    wait_until(lambda: scrape(scheduler_port).get(DUE) == 0, timeout=30)
    after, worker_after = scrape(scheduler_port), scrape(worker_port)

    assert worker_before.get(SENT, 0) < worker_after[SENT] == USERS
    # A silence and a delivery per user, each timed where it ran.
    assert worker_after[LATENESS] - worker_before.get(LATENESS, 0) == 2 * USERS
    bot_sent = f"reengage_bot_deliveries_total[('bot', '{bot}'), ('status', 'sent')]"
    assert worker_after[bot_sent] == USERS
    assert after[OLDEST] == 0
    assert after[CLAIMED] >= before[CLAIMED] + USERS  # the rest of the silences, the sends


@pytest.mark.slow  # two API processes start: 8 to 20 s on a busy machine
def test_api_processes_sharing_a_port_serve_the_sums_of_all(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    redis_client: redis.Redis,
    spawn_process: Spawn,
) -> None:
    """`reengage serve --workers 2`: whichever process answers `/metrics` counts the events
    both of them accepted, not its own alone."""
    runtime = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    port = free_port()
    spawn_process("api", ["serve", "--port", str(port), "--workers", "2"])
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: bool(scrape(port, "/metrics")), timeout=60)
    headers = {"Authorization": f"Bearer {org.api_key}"}
    requests = 12
    for n in range(requests):  # a connection each: both processes take some
        body = {"id": f"e{n}", "type": "message.user", "bot_id": bot, "user_id": str(n)}
        r = httpx.post(f"{url}/v1/events", json=body, headers=headers, timeout=10)
        assert r.json()["accepted"] == 1, r.text
    accepted = "reengage_events_recorded_total[('outcome', 'accepted')]"
    assert {scrape(port, "/metrics").get(accepted) for _ in range(6)} == {requests}
