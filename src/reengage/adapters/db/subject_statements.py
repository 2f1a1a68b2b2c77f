"""PostgreSQL's statements of the write-behind (`subjects`) as text of their own, built once:
an INSERT ... SELECT has no SQLAlchemy cache key (it was compiled anew for every batch), and
every statement's text is the same for every batch. Rows travel as one JSON document
(`sets.recordset_params`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Table, Text, TextClause, bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.selectable import TextualSelect

from reengage.adapters.db.models import Contact, Conversation
from reengage.adapters.db.types import UTCDateTime
from reengage.services.conversation_rows import CLOCK_COLUMNS

_CONVERSATION: Table = Conversation.__table__  # type: ignore[assignment]
_CONTACT: Table = Contact.__table__  # type: ignore[assignment]
_OPEN = "status <> 'closed'"  # the partial unique index's predicate


def _recordset_sql(table: Table, names: Sequence[str], **others: str) -> str:
    """PostgreSQL: `json_to_recordset(:rows) AS v(...)` of these columns of `table` (and
    `others`, named to a column of `table` whose type they take), the document of
    `recordset_params`."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = {n: table.c[n].type for n in names} | {n: table.c[c].type for n, c in others.items()}
    typed = ", ".join(f"{n} {t.compile(dialect=dialect)}" for n, t in types.items())
    return f"json_to_recordset(CAST(:rows AS json)) AS v({typed})"


def _bound(sql: str) -> TextClause:
    return text(sql).bindparams(
        bindparam("rows", type_=Text()), bindparam("now", type_=UTCDateTime())
    )


NEW_CONTACT = ("org_id", "bot_id", "external_id", "hour_profile")
INSERT_CONTACTS = _bound(
    f"INSERT INTO contact ({', '.join(NEW_CONTACT)}, created_at) "
    f"SELECT {', '.join(f'v.{n}' for n in NEW_CONTACT)}, :now "
    f"FROM {_recordset_sql(_CONTACT, NEW_CONTACT)} "
    "ON CONFLICT DO NOTHING RETURNING bot_id, external_id, id"
)
NEW_CONVERSATION = (
    "org_id",
    "bot_id",
    "contact_id",
    "generation",
    *CLOCK_COLUMNS,
    "status",
    "inactivity_due_at",
)
_INSERTS: dict[tuple[str, ...], TextualSelect] = {}
_CONTACTS: dict[tuple[str, ...], TextualSelect] = {}


def _once(
    made: dict[tuple[str, ...], TextualSelect],
    columns: Sequence[Column[Any]],
    build: Callable[[tuple[str, ...]], TextClause],
) -> TextualSelect:
    """The statement `build` makes for these columns' names, made once and kept in `made`."""
    key = tuple(c.name for c in columns)
    if key not in made:
        made[key] = build(key).columns(*columns)
    return made[key]


def select_contacts(columns: Sequence[Column[Any]]) -> TextualSelect:
    """`columns` of the contacts of (bot_id, external_id) keys."""
    return _once(
        _CONTACTS,
        columns,
        lambda key: text(
            f"SELECT {', '.join(f'c.{n}' for n in key)} "
            f"FROM {_recordset_sql(_CONTACT, ('bot_id', 'external_id'))} "
            "JOIN contact c ON c.bot_id = v.bot_id AND c.external_id = v.external_id"
        ).bindparams(bindparam("rows", type_=Text())),
    )


def insert_conversations(columns: Sequence[Column[Any]]) -> TextualSelect:
    """Insert open conversations (the columns' defaults for the others), skipping contacts
    that have one; return `columns` of those inserted."""
    return _once(
        _INSERTS,
        columns,
        lambda key: _bound(
            f"INSERT INTO conversation ({', '.join(NEW_CONVERSATION)}, "
            "timeout_seq, timeout_stage, context_variables, opened_at) "
            f"SELECT {', '.join(f'v.{n}' for n in NEW_CONVERSATION)}, 0, 0, '{{}}', :now "
            f"FROM {_recordset_sql(_CONVERSATION, NEW_CONVERSATION)} "
            f"ON CONFLICT (contact_id) WHERE {_OPEN} DO NOTHING "
            f"RETURNING {', '.join(key)}"
        ),
    )


_SELECTS: dict[tuple[str, ...], TextualSelect] = {}


def select_open(columns: Sequence[Column[Any]]) -> TextualSelect:
    """The open conversations of contacts (`ids`), locked in id order: `columns`."""
    return _once(
        _SELECTS,
        columns,
        lambda key: text(
            f"SELECT {', '.join(key)} FROM conversation "
            f"WHERE contact_id = ANY(CAST(:ids AS BIGINT[])) AND {_OPEN} "
            "ORDER BY id FOR UPDATE"
        ),
    )


# Each clock into its conversation, unless the row holds a newer one (`subjects._write_clocks`).
WRITE_CLOCKS = text(
    "UPDATE conversation SET "
    + ", ".join(f"{n} = v.{n}" for n in (*CLOCK_COLUMNS, "status"))
    + ", inactivity_due_at = CASE WHEN conversation.activity_seq < v.activity_seq "
    "THEN v.due ELSE conversation.inactivity_due_at END "
    f"FROM {_recordset_sql(_CONVERSATION, ('id', *CLOCK_COLUMNS, 'status'), due='opened_at')} "
    "WHERE conversation.id = v.id AND conversation.activity_seq <= v.activity_seq"
).bindparams(bindparam("rows", type_=Text()))
