"""Real Celery workers on a real Redis broker execute due timers, once, even when killed."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Conversation, ConversationEvent
from reengage.delivery.outbox import delivery_timer
from reengage.domain.inactivity import inactivity_timer
from reengage.domain.timer import ClaimedTimer
from reengage.entrypoints.worker.celery_app import make_celery
from reengage.runtime import Runtime
from reengage.silence import episodes
from reengage.timers.executors import CeleryExecutor
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.scheduler import Scheduler
from tests.conftest import claim_all
from tests.factories import make_bot, make_org, message
from tests.integration.conftest import Spawn, wait_until

pytestmark = pytest.mark.slow  # real worker processes, one killed

LEASE = timedelta(seconds=30)


def fired(runtime: Runtime) -> dict[int, int]:
    with runtime.sessions() as s:
        rows = s.execute(
            select(ConversationEvent.conversation_id, func.count())
            .where(ConversationEvent.kind == "inactivity_detected")
            .group_by(ConversationEvent.conversation_id)
        ).all()
    return {cid: n for cid, n in rows}


@pytest.fixture
def setup(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
    broker: str,
) -> tuple[Runtime, Scheduler]:
    runtime = make_runtime(pg_db, timers=RedisTimerStore(redis_client))
    executor = CeleryExecutor(
        make_celery(runtime.settings.model_copy(update={"broker_url": broker})), runtime
    )
    scheduler = Scheduler(
        sessions=runtime.sessions,
        store=runtime.timers,
        executor=executor,
        registry=runtime.registry,
        clock=clock,
        batch=500,
        lease=LEASE,
    )
    return runtime, scheduler


def seed(runtime: Runtime, clock: ManualClock, users: int) -> list[int]:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    for start in range(0, users, 500):
        runtime.record(
            org.org_id,
            [message(bot, f"u{i}", clock.now()) for i in range(start, min(users, start + 500))],
        )
    with runtime.sessions() as s:
        return list(s.scalars(select(Conversation.id)))


def test_two_workers_execute_due_timers_once(
    setup: tuple[Runtime, Scheduler], spawn_worker: Spawn, clock: ManualClock
) -> None:
    runtime, scheduler = setup
    conversations = seed(runtime, clock, 300)
    spawn_worker("a")
    spawn_worker("b")
    clock.advance(timedelta(minutes=10))
    claim_all(scheduler)
    wait_until(lambda: runtime.timers.count() == 0)
    assert fired(runtime) == {cid: 1 for cid in conversations}


def test_a_worker_killed_mid_execution_leaves_exactly_one_effect(
    setup: tuple[Runtime, Scheduler], spawn_worker: Spawn, clock: ManualClock
) -> None:
    runtime, scheduler = setup
    conversations = seed(runtime, clock, 1500)
    worker = spawn_worker("doomed")
    clock.advance(timedelta(minutes=10))
    claim_all(scheduler)
    wait_until(lambda: len(fired(runtime)) >= 100)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    done_at_kill = len(fired(runtime))
    assert done_at_kill < len(conversations), "the worker finished before it was killed"
    spawn_worker("survivor")
    time.sleep(1)
    clock.advance(LEASE)  # leases of what the dead worker held run out
    claim_all(scheduler)
    wait_until(lambda: len(fired(runtime)) == len(conversations) and runtime.timers.count() == 0)
    assert fired(runtime) == {cid: 1 for cid in conversations}


def test_recovery_work_goes_to_the_recovery_queue(
    pg_db: str, make_runtime: Callable[..., Runtime], broker: str, clock: ManualClock
) -> None:
    """Steps and the deliveries a step enqueues run on `recovery`, apart from conversation
    timeouts; everything else stays on `timers`."""
    runtime = make_runtime(pg_db)
    executor = CeleryExecutor(
        make_celery(runtime.settings.model_copy(update={"broker_url": broker})), runtime
    )
    now = clock.now()
    timers = [
        episodes.step_timer(1, now),
        delivery_timer(2, now, queue=episodes.QUEUE),
        delivery_timer(3, now),
        inactivity_timer(4, "u", 1, now),
    ]
    executor.submit([ClaimedTimer(t, f"token-{i}", 1) for i, t in enumerate(timers)], now)
    client = redis.Redis.from_url(broker)
    messages = {q: [json.loads(m) for m in client.lrange(q, 0, -1)] for q in ("recovery", "timers")}
    client.close()

    def keys(queue: str) -> list[str]:
        return sorted(
            item["key"]
            for message in messages[queue]
            for item in json.loads(base64.b64decode(message["body"]))[0][0]
        )

    assert keys("recovery") == sorted([timers[0].key, timers[1].key])
    assert keys("timers") == sorted([timers[2].key, timers[3].key])


def test_two_named_worker_nodes_share_the_work_without_duplicates(
    setup: tuple[Runtime, Scheduler],
    spawn_worker: Spawn,
    clock: ManualClock,
    broker: str,
    tmp_path: Path,
) -> None:
    """Two machines' workers: distinct node names (`-n a@%h`, `-n b@%h`), the same queues,
    one broker. Both answer, both execute chunks, every timer fires once."""
    runtime, scheduler = setup
    conversations = seed(runtime, clock, 1500)  # 30 tasks of 50 timers
    for node in ("a", "b"):
        spawn_worker(node, args=["--name", f"{node}@%h"])
    control = make_celery(runtime.settings.model_copy(update={"broker_url": broker}))
    names: set[str] = set()

    def both_up() -> bool:
        names.update(n.split("@")[0] for reply in control.control.ping(timeout=0.5) for n in reply)
        return names >= {"a", "b"}

    wait_until(both_up)
    clock.advance(timedelta(minutes=10))
    claim_all(scheduler)
    wait_until(lambda: runtime.timers.count() == 0 and len(fired(runtime)) == len(conversations))
    assert fired(runtime) == {cid: 1 for cid in conversations}
    # Each worker's own log (`spawn_process` writes <name>.log) counts the chunks it ran.
    done = {node: _tasks_succeeded(tmp_path / f"{node}.log") for node in ("a", "b")}
    assert all(n > 0 for n in done.values()), done
    assert sum(done.values()) == 30


def _tasks_succeeded(path: Path) -> int:
    return sum("succeeded in" in line for line in path.read_text().splitlines())
