"""Statements over a batch of rows on PostgreSQL: an INSERT … SELECT (which SQLAlchemy gives
no cache key, so it would be compiled anew on every call) is compiled once and run as text,
with the same rows written and the same typed result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, create_engine, event, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TextualSelect

from reengage.adapters.db.models import Organization
from reengage.adapters.db.sets import (
    frozen,
    insert_many,
    recordset,
    recordset_params,
    write_changes,
)

AT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def _engine(url: str) -> Any:
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


def test_a_batch_insert_runs_as_text_compiled_once_and_returns_typed_rows(pg_db: str) -> None:
    engine = _engine(pg_db)
    table: Any = Organization.__table__
    ran: list[object] = []
    event.listen(engine, "before_execute", lambda _c, stmt, *_: ran.append(stmt))
    with Session(engine) as session, session.begin():
        for n in range(3):
            rows = [
                {"name": f"org-{n}-{k}", "language": "es", "voice": {"gap": k}, "created_at": AT}
                for k in range(2)
            ]
            made = insert_many(
                session, table, rows, returning=(table.c.name, table.c.voice, table.c.created_at)
            ).tuples()
            assert sorted(made) == [(r["name"], r["voice"], AT) for r in rows]
    assert len(ran) == 3
    assert all(isinstance(s, TextClause | TextualSelect) for s in ran)
    assert ran[0] is ran[1] is ran[2]  # one statement object: its compiled form is cached
    with Session(engine) as session:
        rows = session.execute(select(table.c.name, table.c.language).order_by(table.c.id))
        assert [tuple(r) for r in rows] == [
            (f"org-{n}-{k}", "es") for n in range(3) for k in range(2)
        ]
    engine.dispose()


def test_a_column_default_computed_per_call_keeps_the_statement_built_each_time(
    pg_db: str,
) -> None:
    """`voice` defaults to a new dict per row (a callable): its value is bound at run time,
    so that INSERT cannot be frozen; it is built and run as before, defaults included."""
    engine = _engine(pg_db)
    table: Any = Organization.__table__
    with Session(engine) as session, session.begin():
        made = insert_many(
            session, table, [{"name": "plain", "created_at": AT}], returning=(table.c.id,)
        ).scalars()
        (org_id,) = made
    with Session(engine) as session:
        row = session.execute(select(table.c.language, table.c.voice).where(table.c.id == org_id))
        assert tuple(row.one()) == ("pt-BR", {})
    engine.dispose()


def test_a_frozen_statement_keeps_its_constants_and_binds_only_rows(pg_db: str) -> None:
    engine = _engine(pg_db)

    def build() -> Any:
        values = recordset(n=postgresql.INTEGER())
        return select((values["n"] * 10).label("ten"), func.upper("x").label("x"))

    with Session(engine) as session:
        stmt = frozen(session, ("test-frozen",), build)
        assert stmt is not None
        assert frozen(session, ("test-frozen",), build) is stmt
        for n in (1, 2):
            got = session.execute(stmt, recordset_params(["n"], [{"n": n}, {"n": n + 1}])).all()
            assert [tuple(r) for r in got] == [(10 * n, "X"), (10 * (n + 1), "X")]
    engine.dispose()


def test_changed_objects_are_written_one_update_per_set_of_changed_columns(
    db_url: str,
) -> None:
    """On PostgreSQL, loaded objects' changes go out as one UPDATE per table and set of
    changed columns, and the flush then has nothing left of them; a change it cannot write
    (an SQL expression) is left to the flush. Elsewhere the flush writes everything."""
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    table: Any = Organization.__table__
    with Session(engine) as session, session.begin():
        session.add_all(Organization(name=f"org-{n}", created_at=AT) for n in range(5))
    updates: list[str] = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_: updates.append(sql) if sql.startswith("UPDATE") else None,
    )
    with Session(engine) as session, session.begin():
        orgs = session.scalars(select(Organization).order_by(Organization.id)).all()
        orgs[0].name, orgs[1].name = "renamed-0", "renamed-1"
        orgs[2].name, orgs[2].language = "renamed-2", "es"
        orgs[3].language = "en"
        orgs[4].name = table.c.name + "-expr"  # an SQL expression: the flush's to write
        write_changes(session, orgs)
        written_together = len(updates)
    with Session(engine) as session:
        rows = session.execute(select(table.c.name, table.c.language).order_by(table.c.id))
        assert [tuple(r) for r in rows] == [
            ("renamed-0", "pt-BR"),
            ("renamed-1", "pt-BR"),
            ("renamed-2", "es"),
            ("org-3", "en"),
            ("org-4-expr", "pt-BR"),
        ]
    if engine.dialect.name == "postgresql":
        # name; name + language; language — then the flush writes only the expression.
        assert written_together == 3
        assert len(updates) == 4
    else:
        assert written_together == 0
    engine.dispose()
