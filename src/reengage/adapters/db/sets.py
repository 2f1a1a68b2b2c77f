"""Statements over a whole batch of rows.

On PostgreSQL a batch is one statement and one plan whatever its size: look-ups by id take
one array (`= ANY(:ids)`), and rows of several columns travel as one JSON document read back
as a typed row set (`json_to_recordset(:rows) AS v(id bigint, ...)`). A list of thousands of
`IN` terms, or one statement per row (executemany), costs a parse and a plan each time; one
array per column (`unnest`) is as good on the server, but psycopg adapts arrays element by
element in Python (about 3 µs per timestamp, most of a batch's client time), while `orjson`
writes the document in C (datetimes with their offset; naive ones taken as UTC). Elsewhere
(SQLite, in process) the same statement runs once per row (executemany) and look-ups go in
chunks of `IN` terms.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Executable,
    Result,
    Table,
    Text,
    TextClause,
    Update,
    any_,
    bindparam,
    cast,
    column,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSON
from sqlalchemy.orm import ColumnProperty, InstanceState, InstrumentedAttribute, Mapper, Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.selectable import TextualSelect
from sqlalchemy.sql.type_api import TypeEngine

T = TypeVar("T")
CHUNK = 500  # `IN` terms per statement where arrays are not available


def on_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def chunks(session: Session, values: Sequence[T]) -> Iterator[Sequence[T]]:
    """The whole batch at once on PostgreSQL, chunks of `CHUNK` elsewhere."""
    size = max(1, len(values)) if on_postgres(session) else CHUNK
    for start in range(0, len(values), size):
        yield values[start : start + size]


def among(
    session: Session, col: ColumnElement[T] | InstrumentedAttribute[T], values: Iterable[T]
) -> ColumnElement[bool]:
    """`col IN values`; on PostgreSQL `col = ANY(:array)`, a single parameter (one statement
    text whatever the number of values, so its parse and plan are cached)."""
    if on_postgres(session):
        return col == any_(bindparam(None, list(values), type_=ARRAY(col.type)))
    return col.in_(list(values))


def recordset(**columns: TypeEngine[Any]) -> dict[str, ColumnElement[Any]]:
    """PostgreSQL: the columns of `json_to_recordset(:rows) AS v(<columns>)` by name, for a
    statement built once (its rows bound by `recordset_params`)."""
    document = cast(bindparam("rows", type_=Text()), JSON)
    typed = (column(n, t) for n, t in columns.items())
    values = func.json_to_recordset(document).table_valued(*typed)
    return dict(values.render_derived(with_types=True).c.items())


def recordset_params(names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The one parameter of a `recordset` statement: `rows`' `names` as one JSON document.
    A row that is a dict of exactly those names goes as it is (most do: a flush writes tens
    of thousands a second), any other is copied down to them."""
    wanted = set(names)
    document = [
        r if type(r) is dict and r.keys() == wanted else {n: r[n] for n in names} for r in rows
    ]
    return {"rows": orjson.dumps(document, option=orjson.OPT_NAIVE_UTC).decode()}


class Rows:
    """The per-row values of one statement over many rows, by column name: `rows["id"]` is
    a column of `json_to_recordset(:rows) AS v(id bigint, ...)` on PostgreSQL, a bound
    parameter elsewhere. Write the statement once; `execute` runs it for the rows."""

    def __init__(self, session: Session, **columns: TypeEngine[Any]) -> None:
        self._session = session
        self._names = list(columns)
        self._pg = on_postgres(session)
        if self._pg:
            self._cols: dict[str, ColumnElement[Any]] = recordset(**columns)
        else:
            self._cols = {n: bindparam(f"r_{n}", type_=t) for n, t in columns.items()}

    def __getitem__(self, name: str) -> ColumnElement[Any]:
        return self._cols[name]

    def execute(self, stmt: Executable, rows: Sequence[Mapping[str, Any]]) -> Result[Any]:
        """Run `stmt` for `rows` (its result: PostgreSQL's one statement's rows)."""
        if self._pg:
            params: Any = recordset_params(self._names, rows)
        else:
            params = [{f"r_{n}": r[n] for n in self._names} for r in rows]
        return self._session.execute(stmt, params)


def insert_many(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    conflict: Sequence[str] | None = None,
    returning: Sequence[ColumnElement[Any]] = (),
) -> Result[Any]:
    """INSERT `rows` (all with the same keys), skipping those that conflict (on the unique
    index of the `conflict` columns, or any); the `returning` columns of those inserted.

    On PostgreSQL one statement of fixed text reads the rows from one JSON document, so its
    parse and plan are cached however many rows it carries (a multi-row VALUES list is new
    text each time, which psycopg then splits in Python and the server plans again)."""
    if on_postgres(session):
        names = list(rows[0])

        def build() -> Executable:
            return _insert_statement(table, names, conflict, returning)

        key = ("insert", table.name, tuple(names), _names(conflict), _names(returning))
        fixed = frozen(session, key, build)  # None: a column default bound at run time
        stmt = fixed if fixed is not None else build()
        return session.execute(stmt, recordset_params(names, rows))
    plain = sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
    return session.execute(plain.returning(*returning) if returning else plain, list(rows))


def _insert_statement(
    table: Table,
    names: Sequence[str],
    conflict: Sequence[str] | None,
    returning: Sequence[ColumnElement[Any]] = (),
) -> Executable:
    """PostgreSQL: `insert_many`'s INSERT … SELECT of `names` from a `recordset` document."""
    values = recordset(**{name: table.c[name].type for name in names})
    stmt = postgresql.insert(table).from_select(names, select(*(values[n] for n in names)))
    stmt = stmt.on_conflict_do_nothing(index_elements=conflict)
    return stmt.returning(*returning) if returning else stmt


def _names(columns: Sequence[Any] | None) -> tuple[str, ...] | None:
    return None if columns is None else tuple(str(c) for c in columns)


# SQLAlchemy gives INSERT … SELECT no cache key: such a statement is compiled anew on every
# call, which cost more of a batch's CPU than running it. Its text is the same for the same
# columns, so it is compiled once and run as a `text()` statement (which the compiled cache
# keeps), its result columns typed as the original's.
_FROZEN: dict[tuple[str, Hashable], TextClause | TextualSelect | None] = {}
_PYFORMAT = re.compile(r"%\((\w+)\)s")


def frozen(
    session: Session, key: Hashable, build: Callable[[], Executable]
) -> TextClause | TextualSelect | None:
    """`build()`'s statement compiled once per dialect and `key`, as a `text()` statement
    that binds `rows` (a `recordset` document) at run time; the other values it binds are
    kept as they were built (build it from constants). None when it binds another value at
    run time (a column default computed per call): then it cannot be frozen."""
    dialect = session.get_bind().dialect
    if (dialect.name, key) not in _FROZEN:
        stmt: Any = build()
        compiled = stmt.compile(dialect=dialect)
        if any(v is None and n != "rows" for n, v in compiled.params.items()):
            _FROZEN[dialect.name, key] = None
            return None
        sql = _PYFORMAT.sub(r"(:\1)", compiled.string.replace("%%", "%"))  # `(:x)::type`
        binds = [
            bindparam(n, type_=Text()) if n == "rows" else bindparam(n, v)
            for n, v in compiled.params.items()
        ]
        made: Any = text(sql).bindparams(*binds)
        # Its result typed by name and type alone (an expression's own binds would clash).
        columns = [column(c.key, c.type) for c in stmt.exported_columns]
        _FROZEN[dialect.name, key] = made.columns(*columns) if columns else made
    return _FROZEN[dialect.name, key]


def insert_sql(
    session: Session, table: Table, names: list[str], conflict: Sequence[str] | None
) -> str | None:
    """PostgreSQL's text of `insert_many` for these columns, as psycopg takes it: one
    parameter, `%(rows)s`, the document of `rows_document`. None when it would bind more (a
    default of a column left out)."""
    stmt: Any = _insert_statement(table, names, conflict)
    compiled = stmt.compile(dialect=session.get_bind().dialect)
    if set(compiled.params) != {"rows"} or compiled.string.count("%(rows)s") != 1:
        return None
    return str(compiled.string)


def rows_document(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """The JSON document of `rows` (their `names` columns) that `insert_sql` reads."""
    return str(recordset_params(names, rows)["rows"])


def write_changes(session: Session, objects: Iterable[object]) -> None:
    """PostgreSQL: what changed in these loaded objects, written set-based — one UPDATE per
    table and set of changed columns, the rows in one JSON document — and marked as written,
    so the session's flush has nothing left of them (its unit of work would send one UPDATE
    per row). Elsewhere nothing: the flush writes them. Objects with a change this cannot
    write (an SQL expression, a primary key, a relationship) are left to the flush. Not for
    configuration rows (bots, organizations, keys): the flush's hooks tell the caches of
    their changes, this does not."""
    if not on_postgres(session):
        return
    groups: dict[
        tuple[Table, tuple[str, ...]], list[tuple[InstanceState[Any], tuple[str, ...], Any]]
    ]
    groups = {}
    for obj in objects:
        state = typing.cast(InstanceState[Any], inspect(obj))
        if not state.committed_state or state.key is None or state.deleted:
            continue
        changed = tuple(sorted(state.committed_state))
        target = _writable(state.mapper, changed)
        if target is None or any(isinstance(state.dict.get(k), ClauseElement) for k in changed):
            continue
        groups.setdefault(target, []).append((state, changed, state.key[1][0]))
    for (table, names), members in groups.items():
        pk = table.primary_key.columns[0]
        rows = [
            {pk.name: ident, **dict(zip(names, map(state.dict.get, keys), strict=True))}
            for state, keys, ident in members
        ]
        params = recordset_params([pk.name, *names], rows)
        session.execute(
            _update_statement(table, names), {**params, "ids": [r[pk.name] for r in rows]}
        )
        for state, keys, _ in members:
            for key in keys:
                set_committed_value(state.obj(), key, state.dict[key])


@cache
def _writable(mapper: Mapper[Any], keys: tuple[str, ...]) -> tuple[Table, tuple[str, ...]] | None:
    """The table and columns of these changed attributes, if one UPDATE by the primary key
    can write them: plain columns of the mapper's one table, the key not among them."""
    table = typing.cast(Table, mapper.local_table)
    if len(mapper.primary_key) != 1:
        return None
    names = []
    for key in keys:
        prop = mapper.attrs.get(key)
        if not isinstance(prop, ColumnProperty) or len(prop.columns) != 1:
            return None
        col = prop.columns[0]
        if col.table is not table or col.primary_key:
            return None
        names.append(col.name)
    return table, tuple(names)


@cache
def _update_statement(table: Table, names: tuple[str, ...]) -> Update:
    """`write_changes`' statement for these columns of `table` (built once: its cache key is
    computed once)."""
    pk = table.primary_key.columns[0]
    values = recordset(**{pk.name: pk.type, **{n: table.c[n].type for n in names}})
    return (
        update(table)
        .where(pk == values[pk.name], pk == any_(bindparam("ids", type_=ARRAY(pk.type))))
        .values({n: values[n] for n in names})
    )
