"""Recording activity on SQLite and PostgreSQL, with the Redis and SQL timer stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import ActivityRecord, Contact, Conversation
from reengage.adapters.redis.timer_store import RedisTimerStore
from reengage.domain.activity import ChannelKind, ConversationStatus, EventType
from reengage.domain.inactivity import inactivity_key
from reengage.runtime import Runtime
from reengage.services.errors import InvalidInput
from tests.factories import make_bot, make_org, message


def counts(runtime: Runtime) -> tuple[int, int, int]:
    with runtime.sessions() as s:
        return tuple(  # type: ignore[return-value]
            s.scalar(select(func.count()).select_from(m))
            for m in (ActivityRecord, Contact, Conversation)
        )


@pytest.fixture(params=["sql", "redis"])
def runtime(
    request: pytest.FixtureRequest, db_url: str, make_runtime: Callable[..., Runtime]
) -> Runtime:
    if request.param == "redis":
        client: redis.Redis = request.getfixturevalue("redis_client")
        return make_runtime(db_url, timers=RedisTimerStore(client, namespace="t"))
    return make_runtime(db_url)


def test_a_burst_of_messages_leaves_one_pending_timer(runtime: Runtime, clock: ManualClock) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    for _batch in range(10):
        events = [
            message(bot, "alice", clock.advance(timedelta(seconds=1)), EventType.USER_MESSAGE)
            for _ in range(100)
        ]
        runtime.record(org.org_id, events)
    assert runtime.timers.count() == 1
    with runtime.sessions() as s:
        conv = s.scalars(select(Conversation)).one()
    timer = runtime.timers.get(inactivity_key(conv.id))
    assert timer is not None
    assert conv.activity_seq == 1000 == timer.version
    assert timer.due_at == clock.now() + timedelta(minutes=10) == conv.inactivity_due_at


def test_each_subject_has_its_own_timer(runtime: Runtime, clock: ManualClock) -> None:
    org = make_org(runtime)
    bots = [make_bot(runtime, org.org_id), make_bot(runtime, org.org_id)]
    events = [
        message(b, f"user{u}", clock.now()) for b in bots for u in range(50) for _ in range(3)
    ]
    result = runtime.record(org.org_id, events)
    assert (result.accepted, result.duplicates) == (300, 0)
    assert runtime.timers.count() == 100
    assert counts(runtime) == (300, 100, 100)


def test_a_retried_event_is_applied_once(runtime: Runtime, clock: ManualClock) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    first = [
        message(bot, "bob", clock.now(), event_id="m-1"),
        message(bot, "bob", clock.now(), event_id="m-2"),
    ]
    assert runtime.record(org.org_id, first).accepted == 2
    clock.advance(timedelta(minutes=3))
    retry = [
        message(bot, "bob", clock.now(), event_id="m-2"),
        message(bot, "bob", clock.now(), event_id="m-2"),
    ]
    result = runtime.record(org.org_id, retry)
    assert (result.accepted, result.duplicates) == (0, 2)
    with runtime.sessions() as s:
        conv = s.scalars(select(Conversation)).one()
    assert conv.activity_seq == 2
    assert conv.last_activity_at == clock.now() - timedelta(minutes=3)


def test_a_batch_with_one_bad_event_applies_nothing(runtime: Runtime, clock: ManualClock) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    events = [
        message(bot, "a", clock.now()),
        message(bot, "b", clock.now()),
        message(999, "c", clock.now()),
    ]
    with pytest.raises(InvalidInput) as err:
        runtime.record(org.org_id, events)
    assert err.value.field == "events[2].bot_id"
    assert counts(runtime) == (0, 0, 0)
    assert runtime.timers.count() == 0


def test_an_event_for_another_organizations_bot_is_refused(
    runtime: Runtime, clock: ManualClock
) -> None:
    a, b = make_org(runtime, "A"), make_org(runtime, "B")
    bot_of_b = make_bot(runtime, b.org_id)
    with pytest.raises(InvalidInput):
        runtime.record(a.org_id, [message(bot_of_b, "x", clock.now())])
    assert counts(runtime) == (0, 0, 0)


def test_closing_cancels_the_timer_and_the_next_message_opens_a_new_conversation(
    runtime: Runtime, clock: ManualClock
) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    runtime.record(org.org_id, [message(bot, "c", clock.now())])
    assert runtime.timers.count() == 1
    close = message(
        bot,
        "c",
        clock.advance(timedelta(minutes=1)),
        EventType.CONVERSATION_STATUS,
        status=ConversationStatus.CLOSED,
    )
    again = message(bot, "c", clock.advance(timedelta(minutes=1)))
    runtime.record(org.org_id, [close, again])
    with runtime.sessions() as s:
        convs = s.scalars(select(Conversation).order_by(Conversation.id)).all()
    assert [c.status for c in convs] == ["closed", "bot"]
    assert convs[0].inactivity_due_at is None
    assert runtime.timers.get(inactivity_key(convs[0].id)) is None
    assert runtime.timers.get(inactivity_key(convs[1].id)) is not None
    assert runtime.timers.count() == 1


def test_whatsapp_messages_open_the_24h_window_and_payments_mark_the_contact(
    runtime: Runtime, clock: ManualClock
) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id, channel=ChannelKind.WHATSAPP)
    t = clock.now()
    runtime.record(
        org.org_id,
        [
            message(bot, "5511999", t),
            message(bot, "5511999", t + timedelta(seconds=5), EventType.PAYMENT_CONFIRMED),
        ],
    )
    with runtime.sessions() as s:
        conv = s.scalars(select(Conversation)).one()
        contact = s.scalars(select(Contact)).one()
    assert conv.window_expires_at == t + timedelta(hours=24)
    assert contact.paid_at == t + timedelta(seconds=5)


def test_a_bot_with_inactivity_off_gets_no_timer(runtime: Runtime, clock: ManualClock) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id, inactivity_threshold=timedelta(0))
    runtime.record(org.org_id, [message(bot, "d", clock.now())])
    assert runtime.timers.count() == 0
