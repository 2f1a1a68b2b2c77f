"""Alembic environment: runs on PostgreSQL and SQLite (batch mode for ALTERs)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from reengage.adapters.db.models import Base
from reengage.adapters.db.partitions import include_name, include_object_for
from reengage.adapters.db.session import make_engine
from reengage.config import Settings

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
        include_object=include_object_for(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or Settings().database_url
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
