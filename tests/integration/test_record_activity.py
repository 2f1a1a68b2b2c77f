"""Recording activity: SQL store (SQLite, PostgreSQL) and Redis store with write-behind."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Contact, Conversation
from reengage.domain.activity import ChannelKind, ConversationStatus, EventType
from reengage.domain.inactivity import inactivity_key
from reengage.runtime import Runtime
from reengage.services.errors import InvalidInput
from reengage.timers.redis_store import RedisTimerStore
from tests.conftest import REDIS_URL, fresh_database, settle
from tests.factories import make_bot, make_org, message

STORES = [
    ("sqlite", "sql"),
    ("postgresql", "sql"),
    ("postgresql", "sql+redis-timers"),
    ("postgresql", "redis"),
]


def counts(runtime: Runtime) -> tuple[int, int]:
    settle(runtime)
    with runtime.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(Contact)) or 0,
            s.scalar(select(func.count()).select_from(Conversation)) or 0,
        )


def conversations(runtime: Runtime) -> list[Conversation]:
    settle(runtime)
    with runtime.sessions() as s:
        return list(s.scalars(select(Conversation).order_by(Conversation.id)))


@pytest.fixture(params=STORES, ids=["-".join(p) for p in STORES])
def runtime(
    request: pytest.FixtureRequest, make_runtime: Callable[..., Runtime], tmp_path: Path
) -> Runtime:
    database, kind = request.param
    url = fresh_database(database, request, tmp_path)
    if kind == "sql":
        return make_runtime(url)
    client: redis.Redis = request.getfixturevalue("redis_client")
    if kind == "sql+redis-timers":
        return make_runtime(url, timers=RedisTimerStore(client, namespace="t"))
    return make_runtime(url, redis_url=REDIS_URL)


def test_a_burst_of_messages_leaves_one_pending_timer(runtime: Runtime, clock: ManualClock) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    for _ in range(10):
        events = [message(bot, "alice", clock.advance(timedelta(seconds=1))) for _ in range(100)]
        runtime.record(org.org_id, events)
    assert runtime.timers.count() == 1
    timer = runtime.timers.get(inactivity_key(bot, "alice"))
    assert timer is not None
    assert timer.version == 1000
    assert timer.due_at == clock.now() + timedelta(minutes=10)
    [conv] = conversations(runtime)
    assert conv.activity_seq == 1000
    assert conv.inactivity_due_at == timer.due_at
    assert conv.last_activity_at == clock.now()


def test_each_subject_has_its_own_timer(runtime: Runtime, clock: ManualClock) -> None:
    org = make_org(runtime)
    bots = [make_bot(runtime, org.org_id), make_bot(runtime, org.org_id)]
    events = [
        message(b, f"user{u}", clock.now()) for b in bots for u in range(50) for _ in range(3)
    ]
    result = runtime.record(org.org_id, events)
    assert (result.accepted, result.duplicates) == (300, 0)
    assert runtime.timers.count() == 100
    assert counts(runtime) == (100, 100)


def test_a_retried_event_is_applied_once(runtime: Runtime, clock: ManualClock) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    t0 = clock.now()
    first = [message(bot, "bob", t0, event_id="m-1"), message(bot, "bob", t0, event_id="m-2")]
    assert runtime.record(org.org_id, first).accepted == 2
    clock.advance(timedelta(minutes=3))
    retry = [
        message(bot, "bob", clock.now(), event_id="m-2"),
        message(bot, "bob", clock.now(), event_id="m-2"),
    ]
    result = runtime.record(org.org_id, retry)
    assert (result.accepted, result.duplicates) == (0, 2)
    [conv] = conversations(runtime)
    assert (conv.activity_seq, conv.last_activity_at) == (2, t0)


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
    assert counts(runtime) == (0, 0)
    assert runtime.timers.count() == 0
    # Nothing was remembered either: the same ids go through once the batch is fixed.
    assert runtime.record(org.org_id, events[:2]).accepted == 2


def test_an_event_for_another_organizations_bot_is_refused(
    runtime: Runtime, clock: ManualClock
) -> None:
    a, b = make_org(runtime, "A"), make_org(runtime, "B")
    bot_of_b = make_bot(runtime, b.org_id)
    with pytest.raises(InvalidInput):
        runtime.record(a.org_id, [message(bot_of_b, "x", clock.now())])
    assert counts(runtime) == (0, 0)


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
    runtime.record(org.org_id, [close])
    assert runtime.timers.count() == 0
    again = message(bot, "c", clock.advance(timedelta(minutes=1)))
    runtime.record(org.org_id, [again])
    convs = conversations(runtime)
    assert [c.status for c in convs] == ["closed", "bot"]
    assert convs[0].inactivity_due_at is None
    assert convs[1].last_activity_at == clock.now()
    timer = runtime.timers.get(inactivity_key(bot, "c"))
    assert timer is not None
    assert timer.version == convs[1].activity_seq == 3


def test_close_and_reopen_in_one_batch(runtime: Runtime, clock: ManualClock) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    t = clock.now()
    runtime.record(
        org.org_id,
        [
            message(bot, "c", t),
            message(
                bot,
                "c",
                t + timedelta(seconds=1),
                EventType.CONVERSATION_STATUS,
                status=ConversationStatus.CLOSED,
            ),
            message(bot, "c", t + timedelta(seconds=2)),
        ],
    )
    assert [c.status for c in conversations(runtime)] == ["closed", "bot"]
    assert runtime.timers.count() == 1


def test_whatsapp_messages_open_the_24h_window_and_payments_mark_the_contact(
    runtime: Runtime, clock: ManualClock
) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id, channel=ChannelKind.WHATSAPP)
    t = clock.now()
    paid_at = t + timedelta(seconds=5)
    runtime.record(
        org.org_id,
        [
            message(bot, "5511999", t),
            message(bot, "5511999", paid_at, EventType.PAYMENT_CONFIRMED),
        ],
    )
    [conv] = conversations(runtime)
    assert conv.window_expires_at == t + timedelta(hours=24)
    with runtime.sessions() as s:
        assert s.scalars(select(Contact.paid_at)).one() == paid_at


def test_a_bot_with_inactivity_off_gets_no_timer(runtime: Runtime, clock: ManualClock) -> None:
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id, inactivity_threshold=timedelta(0))
    runtime.record(org.org_id, [message(bot, "d", clock.now())])
    assert runtime.timers.count() == 0
    assert counts(runtime) == (1, 1)


def test_many_batches_of_new_users_on_one_connection(
    pg_db: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    # PostgreSQL switches prepared statements to generic plans after a few runs; the
    # ON CONFLICT of new conversations must still match the partial unique index then.
    runtime = make_runtime(pg_db)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)
    for batch in range(15):
        runtime.record(org.org_id, [message(bot, f"b{batch}u{u}", clock.now()) for u in range(3)])
    assert counts(runtime) == (45, 45)
