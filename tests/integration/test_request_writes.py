"""The in-flight marks and answers of concurrent sends: written together (one statement, one
transaction), each with the outcome it would have had alone."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy import text as text_sql

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Bot, Contact, Delivery
from reengage.delivery.outbox import DeliveryRequest, enqueue, enqueue_many
from reengage.delivery.request_writes import (
    Answer,
    Mark,
    RequestWrites,
    _answer_params,
    _answers,
    write_answers,
    write_marks,
)
from reengage.domain.outbound import MessageKind, OutboundMessage
from reengage.runtime import Runtime
from tests.factories import make_bot, make_org, message


def _sending(runtime: Runtime, org: int, bot: int, keys: list[str]) -> list[int]:
    """Deliveries claimed for sending by their first attempt, not yet requested."""
    now = runtime.clock.now()
    runtime.record(org, [message(bot, "u", now)])
    runtime.activity.flush(now)
    with runtime.sessions.begin() as s:
        contact = s.scalars(select(Contact.id).where(Contact.bot_id == bot)).one()
        text = OutboundMessage(MessageKind.TEXT, "Ainda por aí?")
        ids = [
            enqueue(s, DeliveryRequest(org, bot, contact, key, "test", text), now) for key in keys
        ]
        s.execute(update(Delivery).where(Delivery.id.in_(ids)).values(status="sending", attempts=1))
    return ids


def _requested(runtime: Runtime, ids: list[int]) -> list[bool]:
    with runtime.sessions() as s:
        rows = dict(s.execute(select(Delivery.id, Delivery.requested_at)).tuples().all())
    return [rows[i] is not None for i in ids]


def test_marks_written_together_each_as_it_would_alone(
    db_url: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    """A request of the attempt that holds its delivery is marked; one whose delivery a later
    attempt took over, whose bot was disabled since, or already marked is not — in one
    statement over the batch as row by row."""
    runtime = make_runtime(db_url)
    org = make_org(runtime).org_id
    running, stopped = make_bot(runtime, org), make_bot(runtime, org)
    for together in (True, False):
        ok, stale, again = _sending(runtime, org, running, [f"{together}-{k}" for k in "abc"])
        (disabled,) = _sending(runtime, org, stopped, [f"{together}-d"])
        with runtime.sessions.begin() as s:
            s.execute(update(Delivery).where(Delivery.id == again).values(requested_at=clock.now()))
            s.execute(update(Bot).where(Bot.id == stopped).values(disabled_at=clock.now()))
        marks = [
            Mark(ok, 1, running, clock.now()),
            Mark(stale, 0, running, clock.now()),  # attempt 1 holds it now
            Mark(disabled, 1, stopped, clock.now()),
            Mark(again, 1, running, clock.now()),
        ]
        batches = [marks] if together else [[m] for m in marks]
        for batch in batches:
            with runtime.sessions.begin() as s:
                write_marks(s, batch)
        assert [m.marked for m in marks] == [True, False, False, False]
        assert _requested(runtime, [ok, stale, disabled, again]) == [True, False, False, True]
        with runtime.sessions.begin() as s:
            s.execute(update(Bot).where(Bot.id == stopped).values(disabled_at=None))


def test_answers_written_together_release_the_blocks_that_waited_for_them(
    db_url: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    runtime = make_runtime(db_url)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org)
    for together in (True, False):
        first, second, alone = _sending(runtime, org, bot, [f"{together}-{k}" for k in "abc"])
        with runtime.sessions.begin() as s:
            s.execute(
                update(Delivery)
                .where(Delivery.id == second)
                .values(status="scheduled", reason="after_previous", after_id=first)
            )
        at = clock.now() + timedelta(seconds=1)
        answers = [Answer(first, at, "m1"), Answer(alone, at, "m2"), Answer(10**9, at, "m3")]
        batches = [answers] if together else [[a] for a in answers]
        for batch in batches:
            with runtime.sessions.begin() as s:
                write_answers(s, batch)
        assert [(a.found, a.follower) for a in answers] == [
            (True, second),
            (True, None),
            (False, None),
        ]
        with runtime.sessions() as s:
            rows = {
                r.id: (r.status, r.channel_message_id, r.sent_at == at)
                for r in s.scalars(select(Delivery).where(Delivery.id.in_([first, alone])))
            }
        assert rows == {first: ("sent", "m1", True), alone: ("sent", "m2", True)}


def test_concurrent_senders_share_transactions_and_each_learns_its_own_mark(
    pg_db: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    runtime = make_runtime(pg_db)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org)
    ids = _sending(runtime, org, bot, [f"k{n}" for n in range(8)])
    writes = RequestWrites(runtime.sessions)
    commits: list[int] = []
    event.listen(runtime.engine, "commit", lambda _conn: commits.append(1))
    start = threading.Barrier(len(ids))
    marked: dict[int, bool] = {}

    def sender(delivery_id: int) -> None:
        start.wait()
        # Every other sender asks with a stale attempt: its mark must fail alone.
        marked[delivery_id] = writes.mark(
            delivery_id, 1 if delivery_id % 2 else 0, bot, clock.now()
        )

    threads = [threading.Thread(target=sender, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert marked == {i: bool(i % 2) for i in ids}
    assert _requested(runtime, ids) == [bool(i % 2) for i in ids]
    assert len(commits) < len(ids)


def test_a_batch_is_one_statement_of_its_own_transaction_on_postgresql(
    pg_db: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    """Marks, then answers, of sends: each batch reaches PostgreSQL as one statement
    on a connection in autocommit (no BEGIN and COMMIT round trips around it), and what it
    wrote is there for everyone once the call returns."""
    runtime = make_runtime(pg_db)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org)
    ids = _sending(runtime, org, bot, ["a", "b", "c"])
    writes = RequestWrites(runtime.sessions)
    seen: list[tuple[str, bool]] = []

    def statement(conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append((sql.split()[0].upper(), conn.connection.driver_connection.autocommit))

    event.listen(runtime.engine, "before_cursor_execute", statement)
    try:
        assert all(writes.mark(i, 1, bot, clock.now()) for i in ids)
        assert all(writes.answer(i, clock.now(), f"m{i}").found for i in ids)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", statement)
    assert seen == [("UPDATE", True)] * 6
    with runtime.sessions() as s:
        rows = s.execute(
            select(Delivery.requested_at, Delivery.status, Delivery.channel_message_id)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.id)
        ).all()
    assert [(at is not None, status, m) for at, status, m in rows] == [
        (True, "sent", f"m{i}") for i in ids
    ]


def test_an_answer_finds_its_follower_without_reading_the_open_deliveries(
    pg_db: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    """Each answer looks for the block that waits for it by the `after_id` index: the work
    does not grow with the deliveries still open (a 09:00 herd's thousands), which an
    ordered scan of every open id for the smallest waiting one would read, answer after
    answer."""
    runtime = make_runtime(pg_db)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org)
    (first,) = _sending(runtime, org, bot, ["first"])
    now = clock.now()
    with runtime.sessions.begin() as s:
        contact = s.scalars(select(Contact.id).where(Contact.bot_id == bot)).one()
        text = OutboundMessage(MessageKind.TEXT, "Ainda por aí?")
        requests = [DeliveryRequest(org, bot, contact, f"open-{n}", "t", text) for n in range(3000)]
        enqueue_many(s, requests, now)
    answer = Answer(first, now, "m1")
    with runtime.sessions.begin() as s:
        sql = f"EXPLAIN (ANALYZE, FORMAT JSON) {_answers().text}"
        explain = text_sql(sql).bindparams(*_answers()._bindparams.values())
        (plan,) = s.execute(explain, _answer_params([answer])).scalar_one()
        s.rollback()
    assert _rows_read(plan["Plan"]) < 100
    with runtime.sessions.begin() as s:
        write_answers(s, [answer])
    assert (answer.found, answer.follower) == (True, None)


def _rows_read(node: dict[str, Any]) -> int:
    """The rows a plan's nodes read, those its filters removed included, over all loops."""
    loops = int(node.get("Actual Loops", 1))
    own = (int(node.get("Actual Rows", 0)) + int(node.get("Rows Removed by Filter", 0))) * loops
    return own + sum(_rows_read(child) for child in node.get("Plans", []))
