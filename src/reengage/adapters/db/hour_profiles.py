"""Contacts' hour-of-week profiles, learned a batch at a time where activity reaches the
database (the write-behind flush, or the embedded store's commit): one read and one
`executemany` update per batch, never a write per message."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Contact
from reengage.adapters.db.sets import among
from reengage.domain import schedule as sch
from reengage.domain.recovery import Campaign
from reengage.domain.usual_hour import HourProfile

# A contact without a zone of their own is learned in the campaigns' default zone.
DEFAULT_ZONE = Campaign().time_zone
_CHUNK = 1000
_CONTACT: Table = Contact.__table__  # type: ignore[assignment]


def learn_hour_profiles(session: Session, seen: Mapping[int, Sequence[datetime]]) -> int:
    """Observe each contact's user-message instants (by contact id) in their profile; return
    how many profiles changed. Instants in an hour already observed add nothing, so a batch
    written twice learns once."""
    ids = sorted(c for c, instants in seen.items() if instants)
    changed: list[dict[str, object]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        table = _CONTACT.c
        columns = select(table.id, table.time_zone, table.hour_profile)
        # unscoped: the contacts this batch of activity was written for
        rows = session.execute(columns.where(among(session, table.id, chunk)))
        for contact_id, zone_name, raw in rows:
            before = HourProfile.decode(raw)
            tz = _zone(zone_name)
            after = before
            for instant in sorted(seen[contact_id]):
                after = after.observe(instant, tz)
            if after is not before:
                changed.append({"id": contact_id, "hour_profile": after.encode()})
    if changed:  # in id order, as every batch writer locks rows
        changed.sort(key=lambda row: int(str(row["id"])))
        session.execute(update(Contact), changed)
    return len(changed)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return sch.zone(name or DEFAULT_ZONE)
    except sch.ScheduleError:
        return sch.zone(DEFAULT_ZONE)
