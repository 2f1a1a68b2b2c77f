"""A user's message moves the flow exactly once, whatever dies when: its text is committed
before the platform gets its answer, and the `inbound` timer processes it once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Bot, Conversation, ConversationEvent, Delivery
from reengage.domain.activity import ChannelKind, Inbound
from reengage.domain.timer import Purpose
from reengage.runtime import Runtime
from reengage.services.flows import put_flow
from reengage.testing.time_travel import TimeTravel
from tests.conftest import REDIS_URL, settle
from tests.factories import make_bot, make_org, message

FLOW = {
    "nodes": [
        {"id": "hi", "type": "message", "text": "Olá!", "next": "ask"},
        {"id": "ask", "type": "question", "text": "Qual?", "var": "v"},
    ]
}


@pytest.fixture(params=["embedded", "redis"])
def runtime(
    request: pytest.FixtureRequest, pg_db: str, make_runtime: Callable[..., Runtime]
) -> Runtime:
    if request.param == "redis":
        request.getfixturevalue("redis_client")
        return make_runtime(pg_db, redis_url=REDIS_URL)
    return make_runtime(pg_db)


def with_flow(runtime: Runtime, clock: ManualClock) -> tuple[int, int]:
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org, channel=ChannelKind.SIMULATOR)
    with runtime.sessions.begin() as s:
        put_flow(s, org, bot, "f", FLOW, clock.now())
        s.get_one(Bot, bot).entry_flow = "f"
    return org, bot


def drain(runtime: Runtime, clock: ManualClock) -> None:
    TimeTravel(runtime, clock).drain()


def answers(runtime: Runtime) -> list[str]:
    with runtime.sessions() as s:
        keys = s.scalars(select(Delivery.dedup_key).where(Delivery.purpose == "flow")).all()
    return sorted(keys)


def test_a_message_whose_timer_was_lost_is_processed_by_the_sweep_once(
    runtime: Runtime, clock: ManualClock
) -> None:
    org, bot = with_flow(runtime, clock)
    drain(runtime, clock)  # a first round: a fresh Redis index is rebuilt whole, once
    runtime.record(org, [message(bot, "u", clock.now(), inbound=Inbound("oi"))])
    key = f"{Purpose.INBOUND}:{bot}:u"
    assert runtime.timers.get(key) is not None
    runtime.timers.cancel([key])  # the process died before publishing it
    drain(runtime, clock)
    assert answers(runtime) == []
    clock.advance(timedelta(seconds=31))  # the next sweep
    drain(runtime, clock)
    assert len(answers(runtime)) == 2  # "Olá!" and the question, once
    clock.advance(timedelta(seconds=31))
    drain(runtime, clock)
    assert len(answers(runtime)) == 2


def test_a_crash_after_the_decision_records_its_activity_once_and_decides_nothing_twice(
    runtime: Runtime, clock: ManualClock
) -> None:
    org, bot = with_flow(runtime, clock)
    runtime.record(org, [message(bot, "u", clock.now(), inbound=Inbound("oi"))])
    [claimed] = runtime.timers.claim_due(clock.now(), 10, timedelta(seconds=30))
    handle = runtime.registry[Purpose.INBOUND].handle
    handle(claimed.timer, clock.now())  # committed; the process dies before its effects
    settle(runtime)
    with runtime.sessions() as s:
        assert s.scalar(select(Conversation.activity_seq)) == 1  # the user's message only
    clock.advance(timedelta(seconds=31))  # the lease runs out: the timer comes back
    drain(runtime, clock)
    settle(runtime)
    with runtime.sessions() as s:
        flow_steps = s.scalar(
            select(func.count())
            .select_from(ConversationEvent)
            .where(ConversationEvent.kind.like("flow_%"))
        )
        conv = s.scalars(select(Conversation)).one()
    assert flow_steps == 1
    assert len(answers(runtime)) == 2
    assert conv.active_node == "ask"
    # the bot's answer is activity, recorded once (by its event id) when the run came back
    assert conv.activity_seq == 2
