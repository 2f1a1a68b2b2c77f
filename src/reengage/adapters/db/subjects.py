"""Contacts and their open conversations, found or made for a whole batch of subjects at once,
and the write-behind of hot clocks into them.

Conversation rows are locked in id order (as `silence.handler.latest_conversations` does), and
new rows are inserted in key order, so that two writers of the same subjects never wait on
each other crosswise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Row,
    String,
    Table,
    case,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from reengage.adapters.db import subject_statements as sql
from reengage.adapters.db.episode_ends import end_answered_episodes
from reengage.adapters.db.hour_profiles import (
    Profile,
    first_profile,
    hex_bytea,
    learn_hour_profiles,
)
from reengage.adapters.db.models import Contact, Conversation
from reengage.adapters.db.session import insert_for
from reengage.adapters.db.sets import Rows, among, chunks, on_postgres, recordset_params
from reengage.adapters.db.types import UTCDateTime
from reengage.domain.activity import ConversationStatus, SubjectClock
from reengage.events.outbox import emit_agent_closed
from reengage.services.conversation_rows import CLOCK_COLUMNS, clock_values

_CONVERSATION: Table = Conversation.__table__  # type: ignore[assignment]
_CONTACT: Table = Contact.__table__  # type: ignore[assignment]
_OPEN = text("status <> 'closed'")  # literal SQL: the partial unique index's predicate
# What recording activity reads of an open conversation; the write-behind needs only the keys.
_KEYS = [_CONVERSATION.c[name] for name in ("id", "contact_id", "generation")]
_WRITTEN = [*_KEYS, _CONVERSATION.c.status]  # the status: a close of a handoff is told
_CLOCK = [*_KEYS, *(_CONVERSATION.c[n] for n in ("status", *CLOCK_COLUMNS, "inactivity_due_at"))]
Subject = tuple[int, str]  # (bot_id, external user id)


def ensure_contacts(
    session: Session, subjects: list[tuple[int, int, str]], now: datetime
) -> dict[Subject, int]:
    """Contact ids of (org, bot, user) subjects, created when missing."""
    return _contacts(session, subjects, now)[0]


def _contacts(
    session: Session,
    subjects: list[tuple[int, int, str]],
    now: datetime,
    seen: Mapping[Subject, datetime] | None = None,
    profiles: dict[int, Profile] | None = None,
) -> tuple[dict[Subject, int], set[int]]:
    """Contact ids of subjects, and which of them this transaction created (those have no
    conversation or episode yet; on PostgreSQL they are created with the hour profile of
    their `seen` message instant, so those are learned). `profiles` receives the time zone
    and hour profile of those that existed (read with their ids)."""
    found = _select_contacts(session, [(b, u) for _, b, u in subjects], profiles)
    missing = sorted({(b, u): o for o, b, u in subjects if (b, u) not in found}.items())
    if not missing:
        return found, set()
    created = _insert_contacts(session, [(o, b, u) for (b, u), o in missing], now, seen or {})
    found.update(created)
    # Created meanwhile by another transaction (the insert skipped them), or not returned by
    # the insert (SQLite): read.
    late = [key for key, _ in missing if key not in found]
    if late:
        found.update(_select_contacts(session, late))
    return found, set(created.values())


def _select_contacts(
    session: Session, keys: list[Subject], profiles: dict[int, Profile] | None = None
) -> dict[Subject, int]:
    contact = _CONTACT.c  # Core columns: rows, not ORM loading
    columns = [contact.bot_id, contact.external_id, contact.id]
    if profiles is not None:
        columns += [contact.time_zone, contact.hour_profile]
    found: dict[Subject, int] = {}
    if on_postgres(session):
        keyed = [{"bot_id": b, "external_id": u} for b, u in keys]
        document = recordset_params(("bot_id", "external_id"), keyed)
        results = [session.execute(sql.select_contacts(columns), document)]
    else:
        results = [
            session.execute(
                select(*columns).where(tuple_(contact.bot_id, contact.external_id).in_(chunk))
            )
            for chunk in chunks(session, keys)
        ]
    for result in results:
        for row in result:
            found[(row[0], row[1])] = row[2]
            if profiles is not None:
                profiles[row[2]] = (row[3], row[4])
    return found


def _insert_contacts(
    session: Session,
    subjects: list[tuple[int, int, str]],
    now: datetime,
    seen: Mapping[Subject, datetime],
) -> dict[Subject, int]:
    """Insert contacts, skipping those that exist; the ids of those inserted (PostgreSQL,
    with their first hour profile)."""
    values: list[dict[str, Any]] = [
        {"org_id": o, "bot_id": b, "external_id": u} for o, b, u in subjects
    ]
    if on_postgres(session):
        for row, (_, b, u) in zip(values, subjects, strict=True):
            profile = first_profile(seen[(b, u)]) if (b, u) in seen else None
            row["hour_profile"] = hex_bytea(profile) if profile is not None else None
        params = {"now": now, **recordset_params(sql.NEW_CONTACT, values)}
        return {(b, u): i for b, u, i in session.execute(sql.INSERT_CONTACTS, params)}
    for chunk in chunks(session, values):
        stmt = insert_for(session, Contact).on_conflict_do_nothing()
        session.execute(stmt, [{**v, "created_at": now} for v in chunk])
    return {}


def open_conversations(
    session: Session,
    contacts: Mapping[Subject, int],
    orgs: Mapping[int, int],
    now: datetime,
) -> dict[int, Row[Any]]:
    """Each contact's open conversation, locked for this transaction; opened when missing.

    A new conversation continues its contact's activity version, so a subject's timer
    versions only ever grow.
    """
    found = _select_open(session, list(contacts.values()), _CLOCK)
    missing = [Opening(c, orgs[c], s[0]) for s, c in contacts.items() if c not in found]
    found.update(_open(session, missing, now, set(), _CLOCK)[0])
    return found


@dataclass(frozen=True, slots=True)
class Opening:
    """A conversation to open for a contact, with the hot clock to start it with, if any."""

    contact_id: int
    org_id: int
    bot_id: int
    generation: int = 0
    hot: SubjectClock | None = None


def _open(
    session: Session,
    missing: list[Opening],
    now: datetime,
    fresh: set[int],
    columns: list[Column[Any]],
) -> tuple[dict[int, Row[Any]], set[int]]:
    """Open a conversation for each contact that has none (`fresh` ones never had one): the
    rows (`columns`), locked, and which contacts' rows already hold their hot clock."""
    if not missing:
        return {}, set()
    seqs = _last_seqs(session, [o.contact_id for o in missing if o.contact_id not in fresh])
    values = [_opening(o, seqs.get(o.contact_id, 0)) for o in sorted(missing, key=_contact_of)]
    opened = _insert_conversations(session, values, now, columns)
    with_clock = {o.contact_id for o in missing if _prefilled(o) and o.contact_id in opened}
    # Opened meanwhile by another transaction (the insert skipped them), or not returned by
    # the insert (SQLite): read.
    late = [o.contact_id for o in missing if o.contact_id not in opened]
    if late:
        opened.update(_select_open(session, late, columns))
    return opened, with_clock


def _contact_of(opening: Opening) -> int:
    return opening.contact_id


def _prefilled(o: Opening) -> bool:
    """Whether a new conversation is inserted with its hot clock. Not a closed one: it is
    inserted open, so that the partial unique index on open conversations makes a
    concurrent opening wait for it, then `_write_clocks` closes it."""
    return o.hot is not None and o.hot.clock.status is not ConversationStatus.CLOSED


def _opening(o: Opening, last_seq: int) -> dict[str, Any]:
    """A new conversation's row: it continues the contact's activity version, and takes its
    hot clock at once as `_write_clocks` would write it over that row (unless the clock is
    older; the deadline only with a newer version: the row has none to keep)."""
    row: dict[str, Any] = {
        "org_id": o.org_id,
        "bot_id": o.bot_id,
        "contact_id": o.contact_id,
        "generation": o.generation,
        **dict.fromkeys(CLOCK_COLUMNS),
        "activity_seq": last_seq,
        "status": ConversationStatus.BOT.value,
        "inactivity_due_at": None,
    }
    if not _prefilled(o) or o.hot is None or o.hot.clock.activity_seq < last_seq:
        return row
    due = o.hot.due_at if last_seq < o.hot.clock.activity_seq else None
    return row | clock_values(o.hot.clock) | {"inactivity_due_at": due}


def _insert_conversations(
    session: Session, values: list[dict[str, Any]], now: datetime, columns: list[Column[Any]]
) -> dict[int, Row[Any]]:
    """Insert open conversations, skipping contacts that have one; the rows inserted
    (PostgreSQL)."""
    if on_postgres(session):
        params = {"now": now, **recordset_params(sql.NEW_CONVERSATION, values)}
        inserted = session.execute(sql.insert_conversations(columns), params)
        return {row.contact_id: row for row in inserted}
    fixed = {"context_variables": {}, "opened_at": now}
    for chunk in chunks(session, values):
        stmt = insert_for(session, Conversation).on_conflict_do_nothing(
            index_elements=[Conversation.contact_id], index_where=_OPEN
        )
        session.execute(stmt, [{**v, **fixed} for v in chunk])
    return {}


def _last_seqs(session: Session, contact_ids: list[int]) -> dict[int, int]:
    if not contact_ids:
        return {}
    stmt = (
        select(Conversation.contact_id, func.max(Conversation.activity_seq))
        .where(among(session, _CONVERSATION.c.contact_id, contact_ids))
        .group_by(Conversation.contact_id)
    )
    return {c: int(s) for c, s in session.execute(stmt)}


def _select_open(
    session: Session, contact_ids: list[int], columns: list[Column[Any]]
) -> dict[int, Row[Any]]:
    found: dict[int, Row[Any]] = {}
    if on_postgres(session):
        if contact_ids:
            locked = session.execute(sql.select_open(columns), {"ids": contact_ids})
            found.update({row.contact_id: row for row in locked})
        return found
    for chunk in chunks(session, contact_ids):
        stmt = (
            select(*columns)
            .where(
                among(session, _CONVERSATION.c.contact_id, chunk),
                Conversation.status != ConversationStatus.CLOSED.value,
            )
            .order_by(Conversation.id)
            .with_for_update()
        )
        found.update({row.contact_id: row for row in session.execute(stmt)})
    return found


def write_subject_clocks(session: Session, items: Sequence[SubjectClock], now: datetime) -> None:
    """Write hot clocks into conversations: a newer generation closes the open conversation
    and opens the next; a clock only replaces an older one (by activity version)."""
    inbound = {
        (i.bot_id, i.user_id): i.clock.last_inbound_message_at
        for i in items
        if i.clock.last_inbound_message_at is not None
    }
    subjects = [(i.org_id, i.bot_id, i.user_id) for i in items]
    profiles: dict[int, Profile] = {}  # of the contacts found: learned below without a read
    contacts, created = _contacts(session, subjects, now, inbound, profiles)
    by_contact = {contacts[(i.bot_id, i.user_id)]: i for i in items}
    known = {c: i for c, i in by_contact.items() if c not in created}  # others have nothing yet
    found = _select_open(session, list(known), _WRITTEN)
    rows = _close_older_generations(session, found, known, now)
    missing = [
        Opening(c, i.org_id, i.bot_id, i.generation, i)
        for c, i in by_contact.items()
        if c not in rows
    ]
    opened, written = _open(session, missing, now, created, _KEYS)
    rows.update(opened)
    _write_clocks(
        session,
        sorted(((rows[c].id, i) for c, i in by_contact.items() if c not in written), key=_first),
    )
    _write_paid(
        session, sorted((c, i.clock.paid_at) for c, i in by_contact.items() if i.clock.paid_at)
    )
    # A conversation with a human that activity closed (this write, or a newer generation).
    emit_agent_closed(
        session,
        [
            r.id
            for c, r in found.items()
            if r.status == ConversationStatus.HANDOFF.value
            and (c not in rows or known[c].clock.status is ConversationStatus.CLOSED)
        ],
        now,
    )
    # The hour of each contact's latest message (what the hot clock keeps of them); those
    # created here have it already.
    learn_hour_profiles(
        session,
        {
            c: [i.clock.last_inbound_message_at]
            for c, i in by_contact.items()
            if i.clock.last_inbound_message_at is not None and c not in created
        },
        profiles,
    )
    end_answered_episodes(
        session,
        [
            (c, i.clock.activity_seq, i.clock.last_activity_at, i.clock.paid_at)
            for c, i in known.items()
        ],
    )


def _close_older_generations(
    session: Session, rows: dict[int, Row[Any]], hot: Mapping[int, SubjectClock], now: datetime
) -> dict[int, Row[Any]]:
    """Close the open conversations that a newer generation follows; the others."""
    stale = [r.id for c, r in rows.items() if r.generation < hot[c].generation]
    if stale:
        session.execute(
            update(_CONVERSATION)
            .where(among(session, _CONVERSATION.c.id, stale))
            .values(status=ConversationStatus.CLOSED.value, closed_at=now, inactivity_due_at=None)
        )
    return {c: r for c, r in rows.items() if r.generation >= hot[c].generation}


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


def _write_clocks(session: Session, items: list[tuple[int, SubjectClock]]) -> None:
    """Each clock into its conversation, unless the row holds a newer one. The same version
    again (a late message moved some clocks, not the silence): the clocks are written, the
    deadline a handler set for this silence stays."""
    if not items:
        return
    values = [
        {
            "id": conversation_id,
            "status": i.clock.status.value,
            "due": i.due_at,
            **{name: getattr(i.clock, name) for name in CLOCK_COLUMNS},
        }
        for conversation_id, i in items
    ]
    if on_postgres(session):
        session.execute(sql.WRITE_CLOCKS, recordset_params(list(values[0]), values))
        return
    table = _CONVERSATION
    stamps = {name: UTCDateTime() for name in CLOCK_COLUMNS if name != "activity_seq"}
    rows = Rows(
        session,
        id=BigInteger(),
        activity_seq=BigInteger(),
        status=String(),
        due=UTCDateTime(),
        **stamps,
    )
    stmt = (
        update(table)
        .where(table.c.id == rows["id"], table.c.activity_seq <= rows["activity_seq"])
        .values(
            {
                **{name: rows[name] for name in [*CLOCK_COLUMNS, "status"]},
                "inactivity_due_at": case(
                    (table.c.activity_seq < rows["activity_seq"], rows["due"]),
                    else_=table.c.inactivity_due_at,
                ),
            }
        )
    )
    rows.execute(stmt, values)


def _write_paid(session: Session, paid: list[tuple[int, datetime]]) -> None:
    if not paid:
        return
    contact = _CONTACT
    rows = Rows(session, id=BigInteger(), paid_at=UTCDateTime())
    stmt = (
        update(contact)
        .where(contact.c.id == rows["id"], contact.c.paid_at.is_distinct_from(rows["paid_at"]))
        .values(paid_at=rows["paid_at"])
    )
    rows.execute(stmt, [{"id": c, "paid_at": at} for c, at in paid])
