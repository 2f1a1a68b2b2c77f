"""The outbox: a use case decides to send a message by writing a delivery row in its own
transaction (once per key), and publishes the `delivery` timer that sends it after its
commit. Nothing is ever sent inside a decision."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Select, func, insert, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Delivery, DeliveryKey
from reengage.adapters.db.sets import (
    frozen,
    insert_many,
    on_postgres,
    recordset,
    recordset_params,
)
from reengage.domain.outbound import OutboundMessage, message_from_json, message_to_json
from reengage.domain.timer import Payload, Purpose, Timer, timer_key
from reengage.i18n import N_
from reengage.services.errors import InvalidInput, NotFound

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    org_id: int
    bot_id: int
    contact_id: int
    dedup_key: str
    purpose: str
    message: OutboundMessage
    conversation_id: int | None = None
    guard_seq: int | None = None
    delete_after: timedelta | None = None
    # Set when reengage speaks first (see `domain.voice`): one group per decision.
    proactive_group: str | None = None
    episode_id: int | None = None
    after_id: int | None = None  # the delivery that must be settled first (the block before)
    # Retries stop here (the step's send window closed, a reminder became stale).
    valid_until: datetime | None = None
    # An unknown outcome is sent once more (at least once) instead of skipped (at most once).
    retry_ambiguous: bool = False
    # A recovery step's block: its step, whether it is the step's first block, and its
    # episode's start, version and arm (what the campaign's results count it by).
    step: int | None = None
    step_lead: bool = False
    episode_started_at: datetime | None = None
    episode_version: int | None = None
    episode_holdout: bool | None = None


def delivery_timer(
    delivery_id: int,
    due_at: datetime,
    *,
    slot_at: float | None = None,
    queue: str | None = None,
    bot_id: int | None = None,
) -> Timer:
    """The timer that sends a delivery; `slot_at` when its pacing slot is already reserved;
    `queue` to run it on another worker queue than its purpose's; `bot_id` so that the
    executors give each task many bots' sends rather than many of one (`timers.deal`)."""
    payload: Payload = {"delivery_id": delivery_id}
    if bot_id is not None:
        payload["bot_id"] = bot_id
    if slot_at is not None:
        payload["slot_at"] = slot_at
    if queue:
        payload["queue"] = queue
    return Timer(
        timer_key(Purpose.DELIVERY, str(delivery_id)), Purpose.DELIVERY, due_at, 0, payload
    )


def enqueue(session: Session, request: DeliveryRequest, now: datetime) -> int:
    """Create the delivery row (once per key) in the caller's transaction; return its id.
    Publish `delivery_timer(id, now)` after the commit to have it sent."""
    return enqueue_many(session, [request], now)[0]


def enqueue_many(session: Session, requests: list[DeliveryRequest], now: datetime) -> list[int]:
    """`enqueue` for many, in one statement (and one more for keys written before); the ids
    in the requests' order."""
    if not requests:
        return []
    rows = [_row(request, now) for request in requests]
    with session.no_autoflush:  # the rows refer to rows that exist; pending work stays batched
        if on_postgres(session):
            made = _insert_keyed(session, rows)
        else:
            table: Any = Delivery.__table__  # Core: rows written here are not loaded as objects
            returning = (table.c.org_id, table.c.dedup_key, table.c.id)
            made = insert_many(session, table, rows, returning=returning).tuples()
        ids = {(org, key): delivery_id for org, key, delivery_id in made}
    earlier = {(r.org_id, r.dedup_key) for r in requests} - set(ids)
    if earlier:  # made before, under the same keys
        # PostgreSQL: the key table holds the keys (the partitioned deliveries cannot).
        keyed = DeliveryKey if on_postgres(session) else Delivery
        key_id = DeliveryKey.delivery_id if keyed is DeliveryKey else Delivery.id
        found = session.execute(
            select(keyed.org_id, keyed.dedup_key, key_id).where(
                tuple_(keyed.org_id, keyed.dedup_key).in_(list(earlier))
            )
        ).tuples()
        ids |= {(org, key): delivery_id for org, key, delivery_id in found}
    return [ids[r.org_id, r.dedup_key] for r in requests]


def _insert_keyed(session: Session, rows: list[dict[str, object]]) -> Iterable[Any]:
    """PostgreSQL: in one statement, claim each row's key in `delivery_key` (a new id from
    the delivery's sequence for each) and insert the deliveries whose key was new; the
    `(org_id, dedup_key, id)` of those. A key already there (or twice in `rows`) inserts no
    delivery: the unpartitioned key table is what refuses a second send."""
    names = tuple(rows[0])
    stmt = frozen(session, ("delivery_keyed", names), partial(_keyed_statement, names))
    assert stmt is not None, "a delivery's columns have no default computed per call"
    return session.execute(stmt, recordset_params(names, rows)).tuples()


def _keyed_statement(names: tuple[str, ...]) -> Select[Any]:
    """`_insert_keyed`'s statement (built and compiled once: `frozen`)."""
    table: Any = Delivery.__table__
    keys: Any = DeliveryKey.__table__
    values = recordset(**{name: table.c[name].type for name in names})
    wanted = select(
        func.nextval("delivery_id_seq").label("id"), *(values[n].label(n) for n in names)
    ).cte("wanted")
    claimed = (
        postgresql.insert(keys)
        .from_select(
            ["org_id", "dedup_key", "delivery_id"],
            select(wanted.c.org_id, wanted.c.dedup_key, wanted.c.id),
        )
        .on_conflict_do_nothing()
        .returning(keys.c.org_id, keys.c.dedup_key, keys.c.delivery_id)
        .cte("claimed")
    )
    made = (
        insert(table)
        .from_select(
            ["id", *names],
            select(wanted.c.id, *(wanted.c[n] for n in names)).join(
                claimed, claimed.c.delivery_id == wanted.c.id
            ),
        )
        .cte("made")
    )
    return select(claimed.c.org_id, claimed.c.dedup_key, claimed.c.delivery_id).add_cte(made)


def _row(request: DeliveryRequest, now: datetime) -> dict[str, object]:
    return {
        "org_id": request.org_id,
        "bot_id": request.bot_id,
        "contact_id": request.contact_id,
        "conversation_id": request.conversation_id,
        "episode_id": request.episode_id,
        "after_id": request.after_id,
        "dedup_key": request.dedup_key,
        "purpose": request.purpose,
        "proactive_group": request.proactive_group,
        "guard_seq": request.guard_seq,
        "valid_until": request.valid_until,
        "retry_ambiguous": request.retry_ambiguous,
        "step": request.step,
        "step_lead": request.step_lead,
        "episode_started_at": request.episode_started_at,
        "episode_version": request.episode_version,
        "episode_holdout": request.episode_holdout,
        "delete_after_s": int(request.delete_after.total_seconds())
        if request.delete_after
        else None,
        "status": "scheduled",
        "message": message_to_json(request.message),
        "attempts": 0,
        "scheduled_at": now,
    }


def resend_delivery(
    session: Session, org_id: int, delivery_id: int, now: datetime
) -> tuple[int, Timer | None]:
    """A new delivery of a failed one's message, under its rules; once per failed delivery
    (its key is `resend:<id>`). Returns its id and the timer to publish after the commit."""
    row = session.scalar(
        select(Delivery).where(Delivery.org_id == org_id, Delivery.id == delivery_id)
    )
    if row is None:
        raise NotFound(
            N_("delivery {delivery_id} not found"), "delivery_id", delivery_id=delivery_id
        )
    if row.status != "failed":
        raise InvalidInput(
            N_("only a failed delivery can be sent again (this one is {status})"), status=row.status
        )
    request = DeliveryRequest(
        row.org_id,
        row.bot_id,
        row.contact_id,
        f"resend:{row.id}",
        row.purpose,
        message_from_json(row.message),
        row.conversation_id,
        row.guard_seq,
        timedelta(seconds=row.delete_after_s) if row.delete_after_s else None,
        proactive_group=row.proactive_group,
        episode_id=row.episode_id,
    )
    new_id = enqueue(session, request, now)
    fresh = session.get_one(Delivery, new_id).status == "scheduled"
    log.info("delivery.resend", delivery_id=row.id, new_delivery_id=new_id)
    return new_id, delivery_timer(new_id, now) if fresh else None
