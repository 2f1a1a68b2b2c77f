"""The schema Alembic builds is the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from reengage.adapters.db.models import Base
from reengage.adapters.db.partitions import include_name, include_object_for
from reengage.adapters.db.session import make_engine


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        # The day partitions are made at run time, not described by the models; some objects
        # are of one database only.
        opts = {
            "compare_type": True,
            "include_name": include_name,
            "include_object": include_object_for(conn.dialect.name),
        }
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_the_comparison_sees_a_missing_column(db_url: str) -> None:
    from sqlalchemy import Column, Integer, MetaData, Table

    engine = make_engine(db_url)
    metadata = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    Table("bot", metadata, Column("extra", Integer), extend_existing=True)
    with engine.connect() as conn:
        opts = {
            "include_name": include_name,
            "include_object": include_object_for(conn.dialect.name),
        }
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert [d[0] for d in diff] == ["add_column"]
