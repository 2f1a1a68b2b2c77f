"""Events out cost a fixed number of statements per batch, not per event: the deciding
transaction writes its events in two, and a batch of sends reads and writes its rows in a
few, however many events it carries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import event, select
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import EventAttempt, EventDelivery
from reengage.domain import event as ev
from reengage.events import outbox
from reengage.events.sender import EventHandler
from reengage.runtime import Runtime
from reengage.services import event_subscriptions as subs
from reengage.testing.server import RunningServer
from tests.conftest import DATABASES, fresh_database
from tests.factories import make_org


async def accept(scope: Scope, receive: Receive, send: Send) -> None:
    """A receiver that takes every request (signatures are checked elsewhere)."""
    while (await receive()).get("more_body"):
        pass
    await Response(status_code=204)(scope, receive, send)


@pytest.fixture
def receiver_url() -> Iterator[str]:
    server = RunningServer(accept)
    yield f"{server.url}/hook"
    server.stop()


class Statements:
    """Counts the statements a runtime's engine runs while `counting`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime, self.count = runtime, 0

    def _note(self, *_: object) -> None:
        self.count += 1

    def __enter__(self) -> Statements:
        self.count = 0
        event.listen(self.runtime.engine, "before_cursor_execute", self._note)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.runtime.engine, "before_cursor_execute", self._note)


@pytest.mark.parametrize("kind", DATABASES)
def test_events_cost_statements_per_batch_not_per_event(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: object,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    receiver_url: str,
) -> None:
    runtime = make_runtime(fresh_database(kind, request, tmp_path))  # type: ignore[arg-type]
    org = make_org(runtime)
    with runtime.sessions.begin() as session:
        change = subs.SubscriptionChange(receiver_url, ["*"])
        subs.create(session, runtime.credentials, org.org_id, change, clock.now())
    handler = runtime.registry["event"]
    assert isinstance(handler, EventHandler)

    def decide_and_send(first: int, count: int) -> tuple[int, int]:
        """`count` events decided in one transaction, then sent as one batch: the
        statements of each."""
        with Statements(runtime) as decided, runtime.sessions.begin() as session:
            for i in range(first, first + count):
                outbox.emit(
                    session,
                    org.org_id,
                    ev.EventType.CONTACT_OPTED_OUT,
                    {"contact": {"id": i}, "reason": "keyword"},
                    dedup_key=f"contact:{i}:opted_out",
                    ordering_key=f"contact:{i}",
                    now=clock.now(),
                )
        with runtime.sessions() as session:
            made = session.scalars(
                select(EventDelivery.id).where(EventDelivery.status == "pending")
            ).all()
        assert len(made) == count
        timers = [outbox.event_timer(i, clock.now()) for i in made]
        with Statements(runtime) as sent:
            handler.handle_batch(timers, clock.now())
        return decided.count, sent.count

    small = decide_and_send(0, 2)
    clock.advance(timedelta(seconds=1))
    large = decide_and_send(100, 40)
    assert large == small  # a batch 20 times larger: the same statements
    with runtime.sessions() as session:
        statuses = session.scalars(select(EventDelivery.status)).all()
        attempts = session.scalars(select(EventAttempt.status_code)).all()
    assert statuses == ["delivered"] * 42  # each sent once, its one attempt recorded
    assert attempts == [204] * 42
