"""Writes on the event loop itself: psycopg's asyncio connection, one per loop, in autocommit.

The texts of webhooks are stored before the platform gets its answer. Through the engine's
pool that was a thread hop per batch and three round trips (BEGIN, the INSERT, COMMIT), each
of which had to win the GIL back from the busy event loop to go on: under load, most of a
webhook's wait. A statement sent in autocommit is its own transaction (atomic, and durable
once PostgreSQL answered): one round trip, awaited on the loop. Each loop has its own
connection, used by one batch at a time; `close_on_loop` closes the running loop's.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import psycopg
from sqlalchemy.engine import Engine

_CONNECTIONS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, psycopg.AsyncConnection[Any]]
] = weakref.WeakKeyDictionary()


def dsn_of(engine: Engine) -> str | None:
    """The libpq address of a PostgreSQL engine; None for any other database."""
    if engine.dialect.name != "postgresql":
        return None
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def connection_on_loop(dsn: str, purpose: str = "texts") -> psycopg.AsyncConnection[Any]:
    """The running loop's autocommit connection to `dsn` for `purpose` (a new one when it
    has none, or when its last one broke). Each purpose has its own: a transaction opened
    on one never takes in another purpose's statements."""
    loop = asyncio.get_running_loop()
    held = _CONNECTIONS.setdefault(loop, {})
    key = f"{purpose} {dsn}"
    conn = held.get(key)
    if conn is None or conn.closed or conn.broken:
        # No server-side prepared statements, as the engine's connections (a pooler in
        # transaction mode would not keep them).
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, prepare_threshold=None)
        held[key] = conn
    return conn


async def close_on_loop() -> None:
    """Close the running loop's connections (its application is shutting down)."""
    held = _CONNECTIONS.pop(asyncio.get_running_loop(), {})
    for conn in held.values():
        await conn.close()
