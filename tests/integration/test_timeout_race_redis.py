"""Production mode (Redis hot state): an answer that lands while the close is being decided
wins, because the close is a compare-and-set on the subject's activity version."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import redis
from sqlalchemy import select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Bot, Conversation
from reengage.domain.activity import ChannelKind, Inbound
from reengage.domain.policy import Level
from reengage.runtime import Runtime
from reengage.services.flows import put_flow
from reengage.services.policies import Scope, put_policy
from reengage.timers.executors import InlineExecutor
from tests.conftest import REDIS_URL, settle
from tests.factories import make_bot, make_org, message

FLOW = {
    "nodes": [
        {"id": "ask", "type": "question", "text": "Qual?", "var": "v", "next": "end"},
        {"id": "end", "type": "close", "text": "ok"},
    ]
}


def test_the_answer_beats_a_close_already_claimed(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    redis_client: redis.Redis,
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org, channel=ChannelKind.SIMULATOR, inactivity_threshold=timedelta(0))
    with runtime.sessions.begin() as s:
        put_flow(s, org, bot, "f", FLOW, clock.now())
        put_policy(
            s,
            org,
            Scope(Level.NODE, bot, "f", "ask"),
            {"enabled": True, "timeout": "10m", "action": "close", "final_text": "bye"},
            clock.now(),
        )
        s.get_one(Bot, bot).entry_flow = "f"
    runtime.record(org, [message(bot, "u", clock.now(), inbound=Inbound("oi"))])
    [start] = runtime.timers.claim_due(clock.now(), 10, timedelta(seconds=30))
    InlineExecutor(runtime).submit([start], clock.now())  # the entry flow asks its question
    settle(runtime)
    clock.advance(timedelta(minutes=10))
    claimed = runtime.timers.claim_due(clock.now(), 10, timedelta(seconds=30))
    assert [c.timer.purpose for c in claimed if c.timer.purpose == "inactivity"]
    runtime.record(org, [message(bot, "u", clock.now())])  # in Redis only, not yet flushed
    # The activity version check is what stops it: bypass it to test the compare-and-set too.
    assert not runtime.activity.change_status(
        bot, "u", claimed[0].timer.version, "closed", clock.now()
    )
    InlineExecutor(runtime).submit(claimed, clock.now())
    settle(runtime)
    with runtime.sessions() as s:
        assert s.scalars(select(Conversation.status)).all() == ["bot"]
