"""Contacts' hour-of-week profiles, learned a batch at a time where activity reaches the
database (the write-behind flush, or the embedded store's commit): one read and one update
per batch, never a write per message. A contact the flush creates takes its first profile in
its very insert (`first_profile`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, LargeBinary, Table, select, update
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Contact
from reengage.adapters.db.sets import Rows, among, on_postgres
from reengage.domain import schedule as sch
from reengage.domain.recovery import Campaign
from reengage.domain.usual_hour import HourProfile, hour_of_week, learns_from

# A contact without a zone of their own is learned in the campaigns' default zone.
DEFAULT_ZONE = Campaign().time_zone
_CHUNK = 1000
_CONTACT: Table = Contact.__table__  # type: ignore[assignment]
Profile = tuple[str | None, bytes | None]  # a contact's time zone and encoded hour profile


def learn_hour_profiles(
    session: Session,
    seen: Mapping[int, Sequence[datetime]],
    stored: Mapping[int, Profile] | None = None,
) -> int:
    """Observe each contact's user-message instants (by contact id) in their profile; return
    how many profiles changed. Instants in an hour already observed add nothing, so a batch
    written twice learns once. `stored`: contacts' time zone and profile already read in
    this transaction (the others are read here)."""
    ids = sorted(c for c, instants in seen.items() if instants)
    stored = stored or {}
    current = [(c, *stored[c]) for c in ids if c in stored]
    unread = [c for c in ids if c not in stored]
    for start in range(0, len(unread), _CHUNK):
        chunk = unread[start : start + _CHUNK]
        table = _CONTACT.c
        columns = select(table.id, table.time_zone, table.hour_profile)
        # unscoped: the contacts this batch of activity was written for
        current += session.execute(columns.where(among(session, table.id, chunk))).tuples()
    changed: list[tuple[int, bytes]] = []
    for contact_id, zone_name, raw in current:
        learned = _learn(raw, zone_name, seen[contact_id])
        if learned is not None:
            changed.append((contact_id, learned))
    _write_profiles(session, changed)
    return len(changed)


def first_profile(instant: datetime) -> bytes | None:
    """The profile `learn_hour_profiles` would give a new contact (no zone, no profile yet)
    for one message instant; None when it would leave it unset."""
    # An empty profile's first observation depends only on the instant's UTC hour and its
    # local hour of the week: a batch of new contacts shares a few of them.
    key = (
        instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0),
        hour_of_week(instant, _zone(None)),
    )
    try:
        return _FIRST[key]
    except KeyError:
        profile = _learn(None, None, [instant])
    if len(_FIRST) >= _FIRST_KEPT:
        _FIRST.clear()
    _FIRST[key] = profile
    return profile


_FIRST: dict[tuple[datetime, int], bytes | None] = {}
_FIRST_KEPT = 256


def _learn(raw: bytes | None, zone: str | None, instants: Sequence[datetime]) -> bytes | None:
    """The profile `raw` with the instants observed; None when they change nothing."""
    if not learns_from(raw, instants):  # most flushes: the same hour again
        return None
    before = HourProfile.decode(raw)
    after = before
    tz = _zone(zone)
    for instant in sorted(instants):
        after = after.observe(instant, tz)
    return None if after is before else after.encode()


def _write_profiles(session: Session, changed: list[tuple[int, bytes]]) -> None:
    if not changed:
        return
    changed.sort()  # in id order, as every batch writer locks rows
    if not on_postgres(session):
        session.execute(update(Contact), [{"id": c, "hour_profile": p} for c, p in changed])
        return
    # One statement for the batch, not one per row; the profiles travel in the JSON
    # document as bytea's hex input.
    rows = Rows(session, id=BigInteger(), hour_profile=LargeBinary())
    stmt = (
        update(_CONTACT)
        .where(_CONTACT.c.id == rows["id"])
        .values(hour_profile=rows["hour_profile"])
    )
    rows.execute(stmt, [{"id": c, "hour_profile": hex_bytea(p)} for c, p in changed])


def hex_bytea(value: bytes) -> str:
    """bytea's hex input format (a JSON document carries no bytes)."""
    return "\\x" + value.hex()


def _zone(name: str | None) -> ZoneInfo:
    try:
        return sch.zone(name or DEFAULT_ZONE)
    except sch.ScheduleError:
        return sch.zone(DEFAULT_ZONE)
