"""A scheduler sleeps until the next due instant (woken early by an earlier schedule from any
process), and never claims more than its executors finish within a lease."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from reengage.adapters.clock import SystemClock
from reengage.config import Settings
from reengage.domain.timer import ClaimedTimer, Timer
from reengage.runtime import Runtime
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.scheduler import ClaimBound, Scheduler
from tests.conftest import REDIS_URL, fresh_database


@pytest.fixture
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    url = fresh_database("sqlite", request, tmp_path)
    settings = Settings(database_url=url, redis_url=None, broker_url=None)  # type: ignore[call-arg]
    built = Runtime.build(settings, clock=SystemClock())
    yield built
    built.close()


class CountingStore(RedisTimerStore):
    """The Redis store, counting the claims a scheduler makes."""

    claims = 0

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[ClaimedTimer]:
        self.claims += 1
        return super().claim_due(now, limit, lease)


class Recorder:
    """Notes when each timer ran and acks it, as an inline executor would."""

    def __init__(self, store: RedisTimerStore) -> None:
        self.store = store
        self.ran: dict[str, float] = {}

    def submit(self, claimed: Sequence[ClaimedTimer], now: datetime) -> None:
        for item in claimed:
            self.ran[item.timer.key] = time.time()
        self.store.ack(claimed)


class PacedExecutor:
    """Finishes `rate` timers a second on a thread of its own, as a queue of workers does."""

    def __init__(self, store: RedisTimerStore, rate: float) -> None:
        self.store, self.rate = store, rate
        self.queue: queue.Queue[ClaimedTimer | None] = queue.Queue()
        self.attempts: list[int] = []
        self.thread = threading.Thread(target=self._work)
        self.thread.start()

    def submit(self, claimed: Sequence[ClaimedTimer], now: datetime) -> None:
        for item in claimed:
            self.queue.put(item)

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            time.sleep(1 / self.rate)
            self.attempts.append(item.attempts)
            self.store.ack([item])

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()


def start(scheduler: Scheduler) -> Callable[[], None]:
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,))
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(5)
        assert not thread.is_alive()

    return halt


def scheduler(
    runtime: Runtime, store: RedisTimerStore, executor: object, **kw: object
) -> Scheduler:
    return Scheduler(
        sessions=runtime.sessions,
        store=store,
        executor=executor,  # type: ignore[arg-type]
        registry=runtime.registry,
        clock=SystemClock(),
        **kw,  # type: ignore[arg-type]
    )


def test_a_sleeping_scheduler_fires_each_timer_on_its_instant_without_polling(
    runtime: Runtime, redis_client: redis.Redis
) -> None:
    store = CountingStore(redis_client, namespace="pace")
    recorder = Recorder(store)
    halt = start(scheduler(runtime, store, recorder, batch=50))
    # Another process's store (its own connection) schedules while the scheduler sleeps.
    other = RedisTimerStore(redis.Redis.from_url(REDIS_URL, decode_responses=True), "pace")
    try:
        time.sleep(0.3)  # the first rounds (rebuild, sweep) are behind it
        before = store.claims
        now = time.time()
        dues = {f"t{i}": now + 0.25 + 0.2 * i for i in range(5)}
        other.schedule(
            [
                Timer(key, "inactivity", datetime.fromtimestamp(due, UTC), 1, {})
                for key, due in reversed(dues.items())  # the earliest last: each wakes it
            ]
        )
        time.sleep(max(dues.values()) - time.time() + 0.3)
        rounds = store.claims - before
    finally:
        halt()
    lateness = {key: recorder.ran[key] - due for key, due in dues.items()}
    assert all(0 <= late < 0.04 for late in lateness.values()), lateness
    # A 50 ms poll would have claimed about 25 times in these 1.35 s; sleeping until each
    # due instant claims about once per timer, plus the flush and sweep rounds.
    assert rounds <= 12, rounds


def test_claims_wait_for_the_executors_instead_of_outliving_their_lease(
    runtime: Runtime, redis_client: redis.Redis
) -> None:
    store = RedisTimerStore(redis_client, namespace="bound")
    due = datetime.now(UTC) - timedelta(seconds=1)
    store.schedule([Timer(f"t{i}", "inactivity", due, 1, {}) for i in range(500)])
    executor = PacedExecutor(store, rate=250)
    lease = timedelta(seconds=1)
    halt = start(scheduler(runtime, store, executor, batch=20, lease=lease))
    try:
        deadline = time.monotonic() + 15
        while store.count() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        halt()
        executor.close()
    # 500 timers at 250/s take 2 s, twice the lease: had everything due been claimed at
    # once, most leases would have run out in the queue and those timers been claimed again.
    assert store.count() == 0
    assert len(executor.attempts) == 500
    assert max(executor.attempts) == 1


def test_the_bound_follows_what_the_executors_finish() -> None:
    bound = ClaimBound(lease=30.0, floor=100)
    assert bound.room(0, 0.0) == 100  # nothing measured yet: one batch
    bound.claimed(0, 100)
    assert bound.room(100, 0.5) == 0
    bound.claimed(100, 0)
    assert bound.room(0, 1.0) == 100 * 15 - 0  # 100 done in 1 s: 15 s of work may wait
    bound.claimed(0, 1500)
    # The executors stall: nothing finishes for a whole window while work waits.
    assert bound.room(1500, 2.0) == 0
    assert bound.limit == 50 * 15
    for second in range(3, 10):
        bound.claimed(1500, 0)
        bound.room(1500, float(second))
    assert bound.limit == 100  # down to the floor, never below
    # An idle window (nothing in flight, nothing done) keeps what was learned.
    idle = ClaimBound(lease=30.0, floor=10, rate=40.0)
    idle.room(0, 0.0)
    idle.room(0, 5.0)
    assert idle.rate == 40.0


class FlakyStore(RedisTimerStore):
    """Redis away for a moment, while the scheduler sleeps: its first looks fail."""

    failures = 2

    def next_due(self) -> datetime | None:
        if self.failures:
            self.failures -= 1
            raise redis.ConnectionError("Connection refused")
        return super().next_due()


def test_a_scheduler_outlives_a_failure_while_it_sleeps(
    runtime: Runtime, redis_client: redis.Redis
) -> None:
    store = FlakyStore(redis_client, namespace="flaky")
    recorder = Recorder(store)
    halt = start(scheduler(runtime, store, recorder, batch=50))
    try:
        due = time.time() + 0.5
        store.schedule([Timer("later", "inactivity", datetime.fromtimestamp(due, UTC), 1, {})])
        deadline = time.monotonic() + 5
        while "later" not in recorder.ran and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        halt()
    assert store.failures == 0
    assert "later" in recorder.ran
