"""What counts as a dependency out of reach, how a failure reads in one line, and the waits
between tries while it lasts."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
import redis.exceptions
from sqlalchemy import exc as sa_exc

from reengage.adapters.outage import Backoff, is_outage, one_line


def _sa(kind: type[sa_exc.DBAPIError], orig: Exception) -> sa_exc.DBAPIError:
    return kind("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        (redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1."), True),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), True),
        (redis.exceptions.ResponseError("WRONGTYPE"), False),
        (_sa(sa_exc.OperationalError, psycopg.OperationalError("connection failed")), True),
        (_sa(sa_exc.OperationalError, psycopg.errors.AdminShutdown("terminating")), True),
        (_sa(sa_exc.OperationalError, psycopg.errors.LockNotAvailable("lock timeout")), False),
        (_sa(sa_exc.OperationalError, sqlite3.OperationalError("database is locked")), False),
        (_sa(sa_exc.IntegrityError, psycopg.errors.UniqueViolation("duplicate")), False),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (ValueError("a bug"), False),
    ],
)
def test_is_outage(exc: BaseException, outage: bool) -> None:
    assert is_outage(exc) is outage


def test_one_line_is_the_first_line_without_sql_or_password() -> None:
    orig = psycopg.OperationalError(
        'connection to "postgresql://u:hunter2@db:5432/x" failed\nDETAIL: more'
    )
    assert one_line(_sa(sa_exc.OperationalError, orig)) == (
        'OperationalError: connection to "postgresql://u:***@db:5432/x" failed'
    )


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    backoff = Backoff(first=0.1, cap=1.0)
    assert [backoff.next_wait() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next_wait() == 0.1
