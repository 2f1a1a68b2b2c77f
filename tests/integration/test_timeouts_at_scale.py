"""10,000 conversations with staggered deadlines, two real Celery workers, production mode
(PostgreSQL + Redis): every conversation gets exactly its stages, in order."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import ConversationEvent, Delivery, SimulatorMessage
from reengage.domain.activity import ChannelKind, EventType
from reengage.domain.policy import Level
from reengage.entrypoints.worker.celery_app import make_celery
from reengage.runtime import Runtime
from reengage.services.policies import Scope, put_policy
from reengage.timers.executors import CeleryExecutor
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.scheduler import Scheduler
from tests.conftest import REDIS_URL, claim_all, settle
from tests.factories import make_bot, make_org, message
from tests.integration.conftest import Spawn

pytestmark = pytest.mark.slow  # 10,000 conversations through real workers

USERS = 10_000
LEASE = timedelta(hours=1)  # claims of one round all carry `now + LEASE`: easy to wait for
STEP = timedelta(seconds=30)


def wait_for_round(client: redis.Redis, store: RedisTimerStore, now_ms: int) -> None:
    """Until every timer claimed in the round at `now_ms` has been executed and acked."""
    zset, _ = store.keys
    mark = now_ms + int(LEASE.total_seconds() * 1000)
    deadline = time.monotonic() + 300
    while client.zcount(zset, mark - 1, mark + 1):
        assert time.monotonic() < deadline, "workers did not finish the round"
        time.sleep(0.05)


@pytest.mark.timeout(900)
def test_ten_thousand_conversations_get_exactly_their_stages(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
    broker: str,
    spawn_worker: Spawn,
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org, channel=ChannelKind.SIMULATOR, inactivity_threshold=timedelta(0))
    with runtime.sessions.begin() as session:
        put_policy(
            session,
            org,
            Scope(Level.BOT, bot),
            {
                "enabled": True,
                "timeout": "5m",
                "action": "close",
                "final_text": "Tchau!",
                "applies_to": ["bot_wait"],
                "reminders": [{"after": "2m", "text": "Ainda aí?"}],
            },
            clock.now(),
        )
    start = clock.now()
    for batch in range(0, USERS, 500):
        events = []
        for i in range(batch, batch + 500):
            at = start + timedelta(seconds=i % 300)  # deadlines spread over five minutes
            events += [message(bot, f"u{i}", at), message(bot, f"u{i}", at, EventType.BOT_MESSAGE)]
        runtime.record(org, events)
    settle(runtime)
    for name in ("w1", "w2"):
        spawn_worker(name)
    assert isinstance(runtime.timers, RedisTimerStore)
    executor = CeleryExecutor(
        make_celery(runtime.settings.model_copy(update={"broker_url": broker})), runtime
    )
    scheduler = Scheduler(
        sessions=runtime.sessions,
        store=runtime.timers,
        executor=executor,
        registry=runtime.registry,
        clock=clock,
        batch=1000,
        lease=LEASE,
        activity=runtime.activity,
    )
    while clock.now() < start + timedelta(minutes=12):
        clock.advance(STEP)
        claim_all(scheduler)
        wait_for_round(redis_client, runtime.timers, int(clock.now().timestamp() * 1000))

    with runtime.sessions() as s:
        kinds: dict[int, list[str]] = defaultdict(list)
        for conv_id, kind in s.execute(
            select(ConversationEvent.conversation_id, ConversationEvent.kind).order_by(
                ConversationEvent.id
            )
        ):
            kinds[conv_id].append(kind)
        deliveries = Counter((d.contact_id, d.status) for d in s.scalars(select(Delivery)))
        heard = Counter(m.text for m in s.scalars(select(SimulatorMessage)))
    assert len(kinds) == USERS
    assert all(k == ["reminder_sent", "closed_by_timeout"] for k in kinds.values()), next(
        (c, k) for c, k in kinds.items() if k != ["reminder_sent", "closed_by_timeout"]
    )
    assert set(deliveries.values()) == {2}
    assert {status for _, status in deliveries} == {"sent"}
    assert heard == {"Ainda aí?": USERS, "Tchau!": USERS}
