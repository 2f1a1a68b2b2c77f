"""Events out on real Celery workers: a worker killed while its request is in flight loses
no event; another sends it again, with the same webhook-id."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import redis
import standardwebhooks
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import EventAttempt, EventDelivery
from reengage.entrypoints.worker.celery_app import make_celery
from reengage.events.sender import sending_lease
from reengage.runtime import Runtime
from reengage.services import event_subscriptions as subs
from reengage.services.contacts import ContactChange, change_contact
from reengage.testing.server import RunningServer
from reengage.timers.executors import CeleryExecutor
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.scheduler import Scheduler
from tests.conftest import claim_all
from tests.factories import make_bot, make_org
from tests.integration.conftest import Spawn, wait_until

pytestmark = pytest.mark.slow  # real worker processes, one killed

LEASE = timedelta(seconds=30)


class HangingReceiver:
    """Verifies every request; holds the first one of each webhook-id without answering."""

    def __init__(self) -> None:
        self.secret = ""
        self.received: list[str] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        standardwebhooks.Webhook(self.secret).verify(body, dict(request.headers))
        webhook_id = request.headers["webhook-id"]
        with self._lock:
            first = webhook_id not in self.received
            self.received.append(webhook_id)
        if first:
            await asyncio.sleep(20)  # the worker is killed while it waits for this answer
        await Response(status_code=204)(scope, receive, send)


@pytest.fixture
def receiver() -> Iterator[tuple[HangingReceiver, str]]:
    app = HangingReceiver()
    server = RunningServer(app)
    yield app, f"{server.url}/hook"
    server.stop()


def test_a_worker_killed_while_its_request_is_in_flight_loses_no_event(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
    broker: str,
    spawn_worker: Spawn,
    receiver: tuple[HangingReceiver, str],
) -> None:
    app, url = receiver
    runtime = make_runtime(pg_db, timers=RedisTimerStore(redis_client))
    scheduler = Scheduler(
        sessions=runtime.sessions,
        store=runtime.timers,
        executor=CeleryExecutor(
            make_celery(runtime.settings.model_copy(update={"broker_url": broker})), runtime
        ),
        registry=runtime.registry,
        clock=clock,
        lease=LEASE,
    )
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    with runtime.sessions.begin() as session:
        change = subs.SubscriptionChange(url, ["contact.*"])
        _, app.secret = subs.create(session, runtime.credentials, org.org_id, change, clock.now())
    with runtime.sessions.begin() as session:  # the decision: its event, published on commit
        change_contact(session, org.org_id, bot, "77", ContactChange(opted_out=True), clock.now())
    assert runtime.timers.count() == 1
    doomed = spawn_worker("doomed", queues="events")
    claim_all(scheduler)
    wait_until(lambda: len(app.received) == 1)  # the request left; no answer yet
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    spawn_worker("survivor", queues="events")
    time.sleep(1)
    # The dead worker's leases run out: its timer's (30 s), then its delivery's (50 s).
    clock.advance(max(LEASE, sending_lease(1)))
    claim_all(scheduler)

    def delivered() -> bool:
        with runtime.sessions() as s:
            return s.scalars(select(EventDelivery.status)).all() == ["delivered"]

    wait_until(delivered)
    assert len(app.received) == 2
    assert len(set(app.received)) == 1  # the same event, the same webhook-id
    with runtime.sessions() as s:
        [attempt] = s.scalars(select(EventAttempt)).all()  # the dead one recorded nothing
    assert attempt.status_code == 204
