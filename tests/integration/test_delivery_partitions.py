"""Deliveries by ranges of their id on PostgreSQL (migration 0019), their once-only key in
`delivery_key`, and `reengage prune`: rows and keys survive the conversion, a quiet old range
goes whole with its keys, a range holding a pending delivery stays, and a key still refuses a
second delivery whatever partition the first one sits in."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import IntegrityError

from reengage.adapters.clock import ManualClock
from reengage.adapters.db import id_partitions, partitions
from reengage.adapters.db.migrate import alembic_config, upgrade
from reengage.adapters.db.models import Contact, Delivery
from reengage.adapters.db.session import make_engine
from reengage.delivery.outbox import DeliveryRequest, enqueue, enqueue_many
from reengage.domain.outbound import MessageKind, OutboundMessage
from reengage.runtime import Runtime
from tests.conftest import database_at
from tests.factories import make_bot, make_org, message
from tests.integration.test_partitions import _prune, _sql

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=200)  # past the 90-day retention
STUCK = OLD + timedelta(days=14)  # as old, another week: its own range
RECENT = NOW - timedelta(days=20)
DB = f"reengage_delivery_partitions_{os.getpid()}"
SLOW = pytest.mark.slow
MSG = OutboundMessage(MessageKind.TEXT, "Oi! Ainda por aí?")
# id -> (dedup_key, status, scheduled_at): one week each, ids in time order.
SEEDED = {
    1: ("old:1", "sent", OLD),
    2: ("old:2", "skipped", OLD),
    200: ("stuck", "scheduled", STUCK),  # never settled: its range must stay
    500: ("recent", "sent", RECENT),
    900: ("now", "scheduled", NOW),
}


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own, migrated up to the revision before the delivery partitions."""
    with database_at(DB, "0018") as url:
        yield url


def _seed(url: str, make_runtime: Callable[..., Runtime], clock: ManualClock) -> tuple[int, int]:
    """An organization, a bot (the first), a contact and the `SEEDED` deliveries, with their
    ids; the organization's and the contact's ids."""
    clock.set(OLD)
    runtime = make_runtime(url)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org)
    runtime.record(org, [message(bot, "u1", OLD)])
    with runtime.sessions() as session:
        contact = session.scalars(select(Contact.id).where(Contact.external_id == "u1")).one()
    runtime.close()
    rows = [
        {
            "id": delivery_id,
            "org_id": org,
            "bot_id": bot,
            "contact_id": contact,
            "dedup_key": key,
            "purpose": "recovery",
            "status": status,
            "message": {},
            "attempts": 0,
            "scheduled_at": at,
            "sent_at": at if status == "sent" else None,
            "finished_at": None if status in ("scheduled", "sending") else at,
        }
        for delivery_id, (key, status, at) in SEEDED.items()
    ]
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Delivery.__table__), rows)
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT setval('delivery_id_seq', {max(SEEDED)})"))
    engine.dispose()
    return org, contact


def _top_end(names: dict[str, str]) -> int:
    """Where the newest range ends (exclusive)."""
    ends = [re.search(r"TO \('(\d+)'\)", bound) for bound in names.values()]
    return max(int(end.group(1)) for end in ends if end is not None)


def _ranges(url: str) -> dict[str, str]:
    rows = _sql(
        url,
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'delivery'::regclass",
    )
    return {str(name): str(bound) for name, bound in rows}


def _keys(url: str) -> dict[str, int]:
    rows = _sql(url, "SELECT dedup_key, delivery_id FROM delivery_key ORDER BY delivery_id")
    return {str(key): int(str(delivery_id)) for key, delivery_id in rows}


def _enqueue(runtime: Runtime, org: int, contact: int, *keys: str) -> list[int]:
    """The outbox's own insert, in one transaction: the ids of the deliveries of `keys`."""
    bot = 1
    requests = [DeliveryRequest(org, bot, contact, key, "recovery", MSG) for key in keys]
    with runtime.sessions() as session:
        ids = enqueue_many(session, requests, runtime.clock.now())
        session.commit()
    return ids


def _count(url: str, key: str) -> int:
    return int(str(_sql(url, "SELECT count(*) FROM delivery WHERE dedup_key = :k", k=key)[0][0]))


def test_the_migration_keeps_the_deliveries_and_their_keys_in_ranges_of_ids(
    database: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    _seed(database, make_runtime, clock)

    upgrade(database, "0019")

    assert _sql(database, "SELECT id, dedup_key, status FROM delivery ORDER BY id") == [
        (i, key, status) for i, (key, status, _) in SEEDED.items()
    ]
    assert _keys(database) == {key: i for i, (key, _, _) in SEEDED.items()}
    names = _ranges(database)
    # One range per week deliveries were scheduled (the old ones' share one), the newest
    # reaching ahead of the last id issued; nothing in the DEFAULT partition.
    for first in (1, 200, 500):
        assert f"delivery_d{first}" in names
    assert names["delivery_d1"] == "FOR VALUES FROM ('1') TO ('200')"
    assert _top_end(names) == max(SEEDED) + id_partitions.MIN_RANGE
    assert "delivery_default" in names
    assert _sql(database, "SELECT count(*) FROM delivery_default") == [(0,)]
    assert _sql(database, "SELECT dedup_key FROM delivery_d1 ORDER BY id") == [
        ("old:1",),
        ("old:2",),
    ]


def test_prune_drops_a_quiet_old_range_with_its_keys_and_keeps_the_rest(
    database: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    org, contact = _seed(database, make_runtime, clock)
    upgrade(database, "0019")

    dry = _prune(database, "--dry-run")

    assert "drop partition delivery_d1" in dry
    assert "delivery_d1" in _ranges(database)  # a dry run changes nothing
    assert len(_keys(database)) == len(SEEDED)
    out = _prune(database)
    assert "drop partition delivery_d1" in out
    assert "delete 2 rows from delivery_key" in out
    names = _ranges(database)
    assert "delivery_d1" not in names
    # As old, but holding a delivery never settled: kept, with the newer ones.
    assert "delivery_d200" in names
    assert "delivery_d500" in names
    assert "drop partition delivery_d200" not in out
    assert _sql(database, "SELECT id FROM delivery ORDER BY id") == [(200,), (500,), (900,)]
    assert _keys(database) == {"stuck": 200, "recent": 500, "now": 900}
    assert "drop partition" not in _prune(database)  # nothing left to drop
    # A settled old delivery below every range (none is written there: an id from before a
    # dropped range) sits in the DEFAULT partition: deleted by the prune, with its key.
    _sql(
        database,
        "INSERT INTO delivery (id, org_id, bot_id, contact_id, dedup_key, purpose, status, "
        "message, attempts, scheduled_at, finished_at) SELECT 5, org_id, bot_id, contact_id, "
        "'below', purpose, 'sent', message, 0, :at, :at FROM delivery WHERE id = 500",
        at=OLD,
    )
    _sql(database, "INSERT INTO delivery_key VALUES (:org, 'below', 5)", org=org)
    assert _sql(database, "SELECT id FROM delivery_default") == [(5,)]
    assert "delete 1 rows from delivery\n" in _prune(database)
    assert _sql(database, "SELECT count(*) FROM delivery_default") == [(0,)]
    assert "below" not in _keys(database)

    # The once-only keys still refuse what is kept; a key is forgotten with its delivery,
    # past the retention (the accepted bound: a retry older than that would be new).
    clock.set(NOW)
    runtime = make_runtime(database)
    assert _enqueue(runtime, org, contact, "recent", "stuck") == [500, 200]
    assert _count(database, "recent") == 1
    (again,) = _enqueue(runtime, org, contact, "old:1")
    assert again > max(SEEDED)


def test_prune_waits_for_a_pending_delivery_then_drops_its_range(
    database: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    _seed(database, make_runtime, clock)
    upgrade(database, "0019")
    _prune(database)
    assert "delivery_d200" in _ranges(database)

    _sql(
        database,
        "UPDATE delivery SET status = 'failed', finished_at = :at WHERE id = 200",
        at=STUCK,
    )
    out = _prune(database)

    assert "drop partition delivery_d200" in out
    assert "delivery_d200" not in _ranges(database)
    assert _keys(database) == {"recent": 500, "now": 900}


def test_a_key_refuses_a_second_delivery_in_another_range(
    database: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    """Two deliveries of one key would sit in different partitions (the first in an old
    range, the second past every range): the key table refuses the second, which is neither
    written nor sent; after the next range is made (the DEFAULT partition's rows moving into
    it), still."""
    org, contact = _seed(database, make_runtime, clock)
    upgrade(database, "0019")
    top_end = _top_end(_ranges(database))
    _sql(database, f"SELECT setval('delivery_id_seq', {top_end + 4})")
    clock.set(NOW)
    runtime = make_runtime(database)

    assert _enqueue(runtime, org, contact, "recent") == [500]
    # New keys land past every range (the DEFAULT partition); twice in one batch: once. The
    # keys and the deliveries are written by one statement (a key met before costs one more).
    statements: list[str] = []

    def _statement(_conn: object, _cursor: object, sql: str, *_: object) -> None:
        statements.append(sql)

    event.listen(runtime.engine, "before_cursor_execute", _statement)
    first, twice, same = _enqueue(runtime, org, contact, "late", "late:2", "late")
    event.remove(runtime.engine, "before_cursor_execute", _statement)
    assert len([sql for sql in statements if "delivery" in sql]) == 1
    assert first == same > top_end
    assert _count(database, "recent") == _count(database, "late") == 1
    assert _sql(database, "SELECT count(*) FROM delivery_default") == [(2,)]

    out = _prune(database)

    assert f"create partition delivery_d{top_end}" in out
    assert _sql(database, "SELECT count(*) FROM delivery_default") == [(0,)]
    assert _sql(database, f"SELECT dedup_key FROM delivery_d{top_end} ORDER BY id") == [
        ("late",),
        ("late:2",),
    ]
    assert _enqueue(runtime, org, contact, "late", "recent") == [first, 500]
    assert _count(database, "late") == 1
    with runtime.sessions() as session:  # read by id: its one partition
        assert session.get_one(Delivery, twice).dedup_key == "late:2"
        assert enqueue(session, DeliveryRequest(org, 1, contact, "late:2", "x", MSG), NOW) == twice


@SLOW
def test_the_downgrade_restores_the_plain_table_and_its_unique_key(
    database: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    _seed(database, make_runtime, clock)
    upgrade(database, "0019")

    from alembic import command

    command.downgrade(alembic_config(database), "0018")

    assert _sql(
        database, "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'delivery'::regclass"
    ) == [(0,)]
    assert _sql(database, "SELECT to_regclass('delivery_key')") == [(None,)]
    assert _sql(database, "SELECT id FROM delivery ORDER BY id") == [(i,) for i in SEEDED]
    engine = make_engine(database)
    try:
        refused = pytest.raises(IntegrityError, match="uq_delivery_org_id_dedup_key")
        with refused, engine.begin() as conn:
            conn.execute(text("UPDATE delivery SET dedup_key = 'recent' WHERE id = 900"))
    finally:
        engine.dispose()
    upgrade(database, "0019")  # and up again
    assert _keys(database) == {key: i for i, (key, _, _) in SEEDED.items()}


def test_sqlite_deletes_old_settled_deliveries_in_batches(
    tmp_path: Path, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    org, contact = _seed(url, make_runtime, clock)
    engine = make_engine(url)
    with engine.begin() as conn:
        report = partitions.prune(conn, NOW, timedelta(days=90))
    engine.dispose()

    assert report.deleted["delivery"] == 2
    assert report.dropped == []
    assert _sql(url, "SELECT id FROM delivery ORDER BY id") == [(200,), (500,), (900,)]
    clock.set(NOW)
    runtime = make_runtime(url)
    assert _enqueue(runtime, org, contact, "recent") == [500]  # its own unique key
