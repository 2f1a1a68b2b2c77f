"""Pooled PostgreSQL connections: pinged after sitting idle, not on every transaction."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from reengage.adapters.db.session import make_engine
from tests.conftest import PG_ADMIN_URL


def _kill_connections(engine: Engine) -> int:
    """Terminate every server process of the engine's database (a restart, as they see it)."""
    database = engine.url.database
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(rows)


def _one(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT 1")).scalar_one())


def test_an_idle_connection_closed_by_the_server_is_replaced_before_use(pg_db: str) -> None:
    engine = make_engine(pg_db, ping_idle_after=0.2)
    try:
        assert _one(engine) == 1
        assert _kill_connections(engine) >= 1
        time.sleep(0.3)  # idle longer than the ping threshold
        assert _one(engine) == 1  # pinged, found dead, replaced: the caller never knew
    finally:
        engine.dispose()


def test_a_connection_that_died_while_busy_fails_once_then_the_pool_is_renewed(
    pg_db: str,
) -> None:
    engine = make_engine(pg_db, ping_idle_after=60)
    try:
        assert _one(engine) == 1
        assert _kill_connections(engine) >= 1
        with pytest.raises(DBAPIError) as failed:
            _one(engine)  # used a moment ago: not pinged, so its death shows once
        assert failed.value.connection_invalidated
        assert _one(engine) == 1
    finally:
        engine.dispose()
