"""Recovery episodes as activity reaches the database: running ones end by the domain's one
rule, and the latest one is credited with a return or a payment within its windows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String, Table, func, select, update
from sqlalchemy.orm import Session

from reengage import metrics
from reengage.adapters.db.models import Episode
from reengage.adapters.db.sets import Rows, among
from reengage.adapters.db.types import UTCDateTime
from reengage.domain import recovery as rec
from reengage.domain import results as res
from reengage.events.outbox import emit_episodes_ended

_EPISODE: Table = Episode.__table__  # type: ignore[assignment]
Answered = tuple[int, int, datetime | None, datetime | None]  # contact, seq, last activity, paid


def end_answered_episodes(session: Session, answered: Sequence[Answered]) -> None:
    """A running recovery episode ends as soon as its contact's activity moves past the
    silence it was started for — by the domain's one rule (`recovery.decide_end`):
    `converted` when they paid, otherwise `cancelled` at the time they came back. The step
    handler applies the same rule again before each send, so an episode ended here never
    sends another step. In the same lookup, the contact's most recent episode is credited
    with the return and the payment that fall within the windows of the last step they
    received (`results.decide_credit`), after that step was the last one too."""
    latest = {c: (seq, at, paid) for c, seq, at, paid in answered if at is not None}
    if not latest:
        return
    since = min(t for _, at, paid in latest.values() for t in (at, paid) if t is not None)
    episode = _EPISODE
    found = session.execute(  # most contacts have no recent episode: one indexed lookup
        select(*(episode.c[n] for n in _ATTRIBUTED))
        .where(
            among(session, episode.c.contact_id, list(latest)),
            (episode.c.status == "running")
            | (episode.c.return_until >= since)
            | (episode.c.convert_until >= since),
        )
        .order_by(episode.c.id)
        .with_for_update()
    ).all()
    newest = {row.contact_id: row.id for row in found}  # in id order: the last one wins
    ends, credits = [], []
    for row in found:
        end, credit = _decide(row, latest[row.contact_id], newest[row.contact_id] == row.id)
        if end is not None:
            ends.append(
                {
                    "id": row.id,
                    "org_id": row.org_id,
                    "status": end.status,
                    "reason": end.reason,
                    "at": end.at,
                }
            )
        if credit is not None:
            credits.append(
                {"id": row.id, "returned": credit.returned_at, "converted": credit.converted_at}
            )
    _end(session, ends)
    _credit(session, credits)


def _decide(
    row: Any, latest: tuple[int, datetime | None, datetime | None], newest: bool
) -> tuple[rec.EndEpisode | None, res.Credit | None]:
    """How a running episode ends (`decide_end`), and what the contact's most recent
    episode is credited with (`decide_credit`), for the contact's latest activity."""
    now_seq, last_at, paid_at = latest
    status, end = row.status, None
    if status == "running":
        end = rec.decide_end(row.seq, row.started_at, rec.ContactNow(now_seq, last_at, paid_at))
        status = end.status if end is not None else status
    if not newest:
        return end, None
    view = res.Attribution(
        row.seq,
        status,
        row.last_sent_at,
        row.return_until,
        row.convert_until,
        row.returned_at,
        row.converted_at,
    )
    return end, res.decide_credit(view, now_seq, last_at, paid_at)


_ATTRIBUTED = (
    "id",
    "org_id",
    "contact_id",
    "seq",
    "started_at",
    "status",
    "last_sent_at",
    "return_until",
    "convert_until",
    "returned_at",
    "converted_at",
)


def _end(session: Session, ends: list[dict[str, Any]]) -> None:
    if not ends:
        return
    episode = _EPISODE
    rows = Rows(session, id=BigInteger(), status=String(), reason=String(), at=UTCDateTime())
    stmt = (
        update(episode)
        .where(episode.c.id == rows["id"], episode.c.status == "running")
        .values(
            status=rows["status"], end_reason=rows["reason"], ended_at=rows["at"], next_due_at=None
        )
    )
    rows.execute(stmt, [{k: e[k] for k in ("id", "status", "reason", "at")} for e in ends])
    for ended in ends:  # the rows are locked above: every end applied
        metrics.episodes_ended(ended["status"], ended["reason"])
        told = [(ended["org_id"], ended["id"], ended["status"], ended["reason"])]
        emit_episodes_ended(session, told, ended["at"])


def _credit(session: Session, credits: list[dict[str, Any]]) -> None:
    """A credit never replaces an earlier one (the first return, the first payment count)."""
    if not credits:
        return
    episode = _EPISODE
    rows = Rows(session, id=BigInteger(), returned=UTCDateTime(), converted=UTCDateTime())
    stmt = (
        update(episode)
        .where(episode.c.id == rows["id"])
        .values(
            returned_at=func.coalesce(episode.c.returned_at, rows["returned"]),
            converted_at=func.coalesce(episode.c.converted_at, rows["converted"]),
        )
    )
    rows.execute(stmt, credits)
