"""Group commit: concurrent callers share transactions, each returns once its write is
committed, and a bad write fails its own caller only."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import wait
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from reengage.adapters.db.group_commit import GroupCommit
from reengage.adapters.db.inbound import inbound_rows, insert_rows
from reengage.adapters.db.models import InboundMessage
from reengage.domain.activity import ActivityEvent, EventType, Inbound
from reengage.runtime import Runtime
from tests.factories import make_bot, make_org


def _rows(runtime: Runtime, org_id: int, bot_id: int, n: int) -> list[list[dict[str, Any]]]:
    now = runtime.clock.now()
    said = EventType.USER_MESSAGE
    return [
        inbound_rows(
            org_id,
            [ActivityEvent(f"m{i}", said, bot_id, f"u{i}", now, None, Inbound(f"hello {i}"))],
            now,
        )
        for i in range(n)
    ]


def _count(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(InboundMessage)) or 0)


def _in_threads(call: Callable[[Any], None], items: Sequence[Any]) -> list[BaseException | None]:
    errors: list[BaseException | None] = [None] * len(items)

    def one(i: int) -> None:
        try:
            call(items[i])
        except Exception as exc:
            errors[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


def test_callers_waiting_during_a_commit_share_the_next_one(
    db_url: str, make_runtime: Callable[..., Runtime]
) -> None:
    runtime = make_runtime(db_url)
    org = make_org(runtime)
    bot_id = make_bot(runtime, org.org_id)
    commits: list[int] = []
    event.listen(runtime.engine, "commit", lambda conn: commits.append(1))
    first = threading.Event()
    sizes: list[int] = []

    def write(session: Session, groups: Sequence[list[dict[str, Any]]]) -> None:
        sizes.append(len(groups))
        if len(sizes) == 1:  # the first transaction lasts until every other caller waits
            first.wait(10)
        insert_rows(session, groups)

    group = GroupCommit(runtime.sessions, write)
    items = _rows(runtime, org.org_id, bot_id, 40)
    done = threading.Thread(target=lambda: _in_threads(group, items))
    done.start()
    deadline = time.monotonic() + 10
    while group.waiting < 39 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert group.waiting == 39
    assert _count(runtime) == 0  # nobody returned: nothing is committed yet
    first.set()
    done.join(30)
    assert sizes == [1, 39]
    assert len(commits) == 2
    assert _count(runtime) == 40


def test_a_bad_write_fails_its_own_caller_only(
    db_url: str, make_runtime: Callable[..., Runtime]
) -> None:
    runtime = make_runtime(db_url)
    org = make_org(runtime)
    bot_id = make_bot(runtime, org.org_id)
    gate = threading.Event()
    calls = 0

    def write(session: Session, groups: Sequence[list[dict[str, Any]]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            gate.wait(10)
        insert_rows(session, groups)

    group = GroupCommit(runtime.sessions, write)
    items = _rows(runtime, org.org_id, bot_id, 10)
    items[7][0]["bot_id"] = None  # violates NOT NULL: this caller's write cannot be made
    results: list[list[BaseException | None]] = []
    runner = threading.Thread(target=lambda: results.append(_in_threads(group, items)))
    runner.start()
    deadline = time.monotonic() + 10
    while group.waiting < 9 and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.set()
    runner.join(30)
    errors = results[0]
    assert [i for i, e in enumerate(errors) if e is not None] == [7]
    assert _count(runtime) == 9


def test_a_batch_of_texts_is_one_statement_compiled_once_and_skips_stored_event_ids(
    db_url: str, make_runtime: Callable[..., Runtime]
) -> None:
    runtime = make_runtime(db_url)
    org = make_org(runtime)
    bot_id = make_bot(runtime, org.org_id)
    statements: list[str] = []
    event.listen(runtime.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    compiled: list[object] = []
    event.listen(runtime.engine, "before_execute", lambda *args: compiled.append(args[1]))
    items = _rows(runtime, org.org_id, bot_id, 6)
    with runtime.sessions.begin() as session:
        insert_rows(session, items[:4])
    with runtime.sessions.begin() as session:
        insert_rows(session, items[2:])  # m2 and m3 are stored already: skipped, no error
    inserts = [s for s in statements if s.startswith("INSERT INTO inbound_message")]
    assert _count(runtime) == 6
    if runtime.engine.dialect.name == "postgresql":
        assert len(inserts) == 2  # one statement per batch, the same text both times
        assert inserts[0] == inserts[1]
        assert compiled[0] is compiled[1]  # the same statement object: compiled once, cached


def test_submitted_items_are_written_by_the_group_commits_thread_and_share_transactions(
    db_url: str, make_runtime: Callable[..., Runtime]
) -> None:
    """`submit` returns at once; what is submitted while a transaction is under way goes in
    the next one; each future ends once its item is committed, a bad item's with its error."""
    runtime = make_runtime(db_url)
    org = make_org(runtime)
    bot_id = make_bot(runtime, org.org_id)
    first = threading.Event()
    sizes: list[int] = []

    def write(session: Session, groups: Sequence[list[dict[str, Any]]]) -> None:
        sizes.append(len(groups))
        if len(sizes) == 1:
            first.wait(10)
        insert_rows(session, groups)

    group = GroupCommit(runtime.sessions, write)
    items = _rows(runtime, org.org_id, bot_id, 20)
    items[13][0]["bot_id"] = None  # violates NOT NULL: its own future fails, no other
    futures = [group.submit(items[0])]
    deadline = time.monotonic() + 10
    while not sizes and time.monotonic() < deadline:  # the first transaction is under way
        time.sleep(0.01)
    futures += [group.submit(item) for item in items[1:]]  # none waits for its write
    assert not any(f.done() for f in futures)
    assert _count(runtime) == 0
    first.set()
    wait(futures, timeout=30)
    failed = [i for i, f in enumerate(futures) if f.exception() is not None]
    assert failed == [13]
    assert sizes[:2] == [1, 19]  # the first alone, the others together (then one by one)
    assert _count(runtime) == 19
    later = group.submit(_rows(runtime, org.org_id, bot_id, 21)[20])  # the thread ended: anew
    assert later.result(timeout=10) is None
    assert _count(runtime) == 20
