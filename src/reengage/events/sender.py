"""The `event` timer: one signed POST of an event to one subscription, its attempt logged;
on failure, again with backoff until the retry period is over. Deliveries of a subscription
with the same ordering key (a conversation, a contact) go one after the other."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import standardwebhooks
import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.crypto import Credentials
from reengage.adapters.db.models import (
    EventAttempt,
    EventDelivery,
    EventSubscription,
    OutboundEvent,
)
from reengage.adapters.db.sets import among, insert_many
from reengage.adapters.outage import one_line
from reengage.domain import event as ev
from reengage.domain.timer import Purpose, Timer
from reengage.events.notice import notify_disabled
from reengage.events.outbox import event_timer
from reengage.timers.handler import NOTHING, Outcome

log = structlog.get_logger(__name__)

TIMEOUT = 10.0  # seconds a receiver has to answer
MAX_PARALLEL = 16  # requests of one batch in flight at once
# A delivery behind another of its order waits for it; it is released as soon as the one
# before settles, and looks again after this in case that release was lost.
HOLD = timedelta(seconds=30)
# While a batch sends, its deliveries are leased to it (their `next_at` moved past the time the
# sends may take): another worker that gets the same delivery meanwhile (a timer released by
# the delivery before it in order while the first claim was in flight) leaves it alone and
# looks again when the lease ends, instead of sending it a second time. A worker that dies
# mid-send delays its deliveries by the lease at most.
LEASE_MARGIN = timedelta(seconds=30)


def sending_lease(requests: int) -> timedelta:
    """How long a batch of this many requests may take to send (each round of `MAX_PARALLEL`
    up to twice `TIMEOUT`: connecting, then the answer), with a margin."""
    rounds = -(-requests // MAX_PARALLEL)
    return LEASE_MARGIN + timedelta(seconds=2 * TIMEOUT * rounds)


# Their own worker queue (and, in embedded mode, their own thread): a slow receiver holds
# event senders, never the messages'.
EVENTS_QUEUE = "events"


@dataclass(frozen=True, slots=True)
class Request:
    """What one attempt sends."""

    url: str
    webhook_id: str
    body: str
    secrets: list[str]


@dataclass(frozen=True, slots=True)
class Held:
    """Waiting for an earlier delivery of its order; looks again at `at` at the latest."""

    at: datetime


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_headers(request: Request, timestamp: int) -> dict[str, str]:
    """The Standard Webhooks headers; one signature per secret still valid (rotation)."""
    at = datetime.fromtimestamp(timestamp, UTC)
    signatures = [
        standardwebhooks.Webhook(secret).sign(request.webhook_id, at, request.body)
        for secret in request.secrets
    ]
    return {
        "content-type": "application/json",
        "user-agent": "reengage-events/1",
        "webhook-id": request.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


def post(client: httpx.Client, request: Request) -> Answer:
    """One attempt; the timestamp is the wall clock's (what receivers check it against)."""
    started = time.monotonic()
    try:
        response = client.post(
            request.url,
            content=request.body.encode(),
            headers=signed_headers(request, int(time.time())),
            timeout=TIMEOUT,
        )
    except httpx.HTTPError as exc:
        return Answer(None, one_line(exc)[:300] or type(exc).__name__, _ms(started))
    error = None if response.is_success else f"HTTP {response.status_code}"
    return Answer(response.status_code, error, _ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


@dataclass(frozen=True, slots=True)
class EventHandler:
    sessions: sessionmaker[Session]
    credentials: Credentials
    client: httpx.Client
    purpose: str = Purpose.EVENT
    queue: str = EVENTS_QUEUE

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        return self.handle_batch([timer], now)[0]

    def handle_batch(self, timers: Sequence[Timer], now: datetime) -> list[Outcome]:
        """What to send read in one transaction (a few statements for the whole batch), the
        requests sent side by side, their answers written in one transaction (a few
        statements too: the attempts in one insert, the deliveries' updates together)."""
        ids = [int(t.payload["event_delivery_id"] or 0) for t in timers]
        ready = self.take(ids, now)
        requests = {i: r for i, r in ready.items() if isinstance(r, Request)}
        answers: dict[int, Answer] = {}
        if len(requests) == 1:
            answers = {i: post(self.client, r) for i, r in requests.items()}
        elif requests:
            with ThreadPoolExecutor(min(len(requests), MAX_PARALLEL)) as pool:
                sent = pool.map(lambda r: post(self.client, r), requests.values())
                answers = dict(zip(requests, sent, strict=True))
        with self.sessions.begin() as session:
            locked = _load(session, list(answers), lock=True)
            settled: list[EventDelivery] = []
            attempts: list[dict[str, Any]] = []
            recorded = {
                i: self._record(session, locked, i, a, now, settled, attempts)
                for i, a in answers.items()
            }
            if attempts:
                table: Any = EventAttempt.__table__
                insert_many(session, table, attempts)
            for i, timers in _next_in_order(session, settled, now).items():
                recorded[i] = Outcome([*recorded[i].timers, *timers])
        released = {
            t.key for outcome in recorded.values() for t in outcome.timers if t.due_at <= now
        }
        outcomes = []
        for i in ids:
            step = ready[i]
            if isinstance(step, Held):  # released above by the one it waited for, or later
                held = event_timer(i, step.at)
                step = NOTHING if held.key in released else Outcome([held])
            outcomes.append(recorded[i] if isinstance(step, Request) else step)
        return outcomes

    def take(self, ids: list[int], now: datetime) -> dict[int, Request | Held | Outcome]:
        """What to send of these deliveries, read in one transaction with their rows locked;
        those to send are leased to this batch before the commit (see `sending_lease`)."""
        with self.sessions.begin() as session:
            loaded = _load(session, ids, lock=True, rows_only=False)
            secrets: dict[int, list[str]] = {}  # decrypted once per subscription
            ready = {i: self._ready(session, i, now, loaded, secrets) for i in ids}
            requests = [i for i, r in ready.items() if isinstance(r, Request)]
            lease_end = now + sending_lease(len(requests))
            for i in requests:
                loaded.deliveries[i].next_at = lease_end
        return ready

    def _ready(
        self,
        session: Session,
        delivery_id: int,
        now: datetime,
        loaded: Loaded,
        secrets: dict[int, list[str]] | None = None,
    ) -> Request | Held | Outcome:
        """What to send, or why not now (`loaded`: the batch's rows and the first pending
        delivery of each of their orders; `secrets`: those already decrypted, by
        subscription)."""
        row = loaded.deliveries.get(delivery_id)
        if row is None or row.status != "pending":
            return NOTHING
        if row.next_at > now:  # being sent by another batch, or waiting for its retry
            return Outcome([event_timer(row.id, row.next_at)])
        sub = loaded.subscriptions[row.subscription_id]
        if not sub.enabled:
            row.status, row.finished_at = "failed", now
            row.last_error = "subscription disabled"
            return Outcome(_next_in_order(session, [row], now).get(row.id, []))
        first = loaded.firsts.get((row.subscription_id, row.ordering_key))
        if first is not None and first[0] < row.id:  # its order: after the one before it
            # Being sent for the first time (leased, no attempt yet): it settles within the
            # lease and releases this one; look again after HOLD in case that release is lost
            # (one written before this hold is replaced by it), not after the whole lease.
            _, first_at, first_attempts = first
            in_flight = first_attempts == 0 and first_at > now
            return Held((now if in_flight else max(first_at, now)) + HOLD)
        event = loaded.events[row.event_id]
        kept = {} if secrets is None else secrets
        if sub.id not in kept:
            kept[sub.id] = [str(self.credentials.decrypt(sub.secret)["secret"])]
            if sub.previous_secret and sub.previous_until and sub.previous_until > now:
                kept[sub.id].append(str(self.credentials.decrypt(sub.previous_secret)["secret"]))
        envelope = ev.envelope(event.id, event.type, event.created_at, event.payload)
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
        return Request(sub.url, ev.webhook_id(event.id), body, kept[sub.id])

    def _record(
        self,
        session: Session,
        locked: Loaded,
        delivery_id: int,
        answer: Answer,
        now: datetime,
        settled: list[EventDelivery],
        attempts: list[dict[str, Any]],
    ) -> Outcome:
        """One answer written (the rows loaded and locked with the batch; its attempt added to
        `attempts`, inserted with the batch's); a delivery it settles goes to `settled`, whose
        next in order the caller releases."""
        row = locked.deliveries.get(delivery_id)
        if row is None or row.status != "pending":
            return NOTHING
        sub = locked.subscriptions[row.subscription_id]
        attempts.append(
            {
                "org_id": row.org_id,
                "delivery_id": row.id,
                "at": now,
                "status_code": answer.status_code,
                "error": answer.error,
                "duration_ms": answer.duration_ms,
            }
        )
        row.attempts += 1
        if answer.ok:
            row.status, row.finished_at, row.last_error = "delivered", now, None
            sub.failing_since = None
            settled.append(row)
            return NOTHING
        row.last_error = answer.error
        sub.failing_since = sub.failing_since or now
        if sub.enabled and ev.should_disable(sub.failing_since, now):
            sub.enabled, sub.disabled_reason, sub.updated_at = False, "failing", now
            sub.disabled_at = now
            notify_disabled(session, sub, answer.error, now)
            log.error(
                "events.subscription_disabled",
                org_id=sub.org_id,
                subscription_id=sub.id,
                failing_since=sub.failing_since.isoformat(),
            )
        decision = ev.next_retry(row.attempts, row.retry_from, now)
        if isinstance(decision, ev.RetryAt):
            row.next_at = decision.at
            return Outcome([event_timer(row.id, decision.at)])
        row.status, row.finished_at = "failed", now
        log.warning("events.delivery_failed", delivery_id=row.id, attempts=row.attempts)
        settled.append(row)
        return NOTHING

    def pending(
        self, session: Session, due_before: datetime | None, after_id: int, limit: int
    ) -> list[tuple[int, Timer]]:
        """Deliveries not settled, as the timers that send them (rebuild and sweep)."""
        stmt = (
            select(EventDelivery.id, EventDelivery.next_at)
            .where(EventDelivery.status == "pending", EventDelivery.id > after_id)
            .order_by(EventDelivery.id)
            .limit(limit)
        )
        if due_before is not None:
            stmt = stmt.where(EventDelivery.next_at <= due_before)
        return [(i, event_timer(i, at)) for i, at in session.execute(stmt).tuples()]


Firsts = dict[tuple[int, str], tuple[int, datetime, int]]  # (id, next_at, attempts)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A batch's rows, held here (the session keeps only weak references to what it loaded,
    so rows nobody holds are read again, one statement each), and the first pending delivery
    (id, due, attempts) of each of their orders."""

    deliveries: dict[int, EventDelivery]
    subscriptions: dict[int, EventSubscription]
    events: dict[int, OutboundEvent]
    firsts: Firsts


def _load(
    session: Session, ids: list[int], *, lock: bool = False, rows_only: bool | None = None
) -> Loaded:
    """Load a batch's deliveries, their subscriptions and events in three statements (`lock`:
    deliveries locked, in id order; `rows_only` (by default as `lock`): their subscriptions
    locked too, and neither events nor orders read)."""
    rows_only = lock if rows_only is None else rows_only
    if not ids:
        return Loaded({}, {}, {}, {})
    stmt = select(EventDelivery).where(among(session, EventDelivery.id, ids))
    stmt = stmt.order_by(EventDelivery.id)
    rows = session.scalars(stmt.with_for_update() if lock else stmt).all()
    sub_ids = sorted({r.subscription_id for r in rows})
    stmt_subs = select(EventSubscription).where(among(session, EventSubscription.id, sub_ids))
    stmt_subs = stmt_subs.order_by(EventSubscription.id)
    subs = session.scalars(stmt_subs.with_for_update() if rows_only else stmt_subs).all()
    deliveries = {r.id: r for r in rows}
    subscriptions = {s.id: s for s in subs}
    if rows_only:
        return Loaded(deliveries, subscriptions, {}, {})
    pending = [r for r in rows if r.status == "pending"]
    event_ids = sorted({r.event_id for r in pending})
    events: dict[int, OutboundEvent] = {}
    if event_ids:
        found = session.scalars(
            select(OutboundEvent).where(among(session, OutboundEvent.id, event_ids))
        )
        events = {e.id: e for e in found}
    return Loaded(deliveries, subscriptions, events, _firsts(session, pending))


def _firsts(session: Session, rows: Sequence[EventDelivery]) -> Firsts:
    """The first pending delivery (id, due, attempts) of each of these deliveries' orders."""
    groups = sorted({(r.subscription_id, r.ordering_key) for r in rows})
    if not groups:
        return {}
    # Every subscription by every order of the batch (a few more orders than asked for, when
    # a batch has several subscriptions): one statement text whatever the batch's size.
    first_ids = (
        select(func.min(EventDelivery.id))
        .where(
            EventDelivery.status == "pending",
            among(session, EventDelivery.subscription_id, sorted({s for s, _ in groups})),
            among(session, EventDelivery.ordering_key, sorted({k for _, k in groups})),
        )
        .group_by(EventDelivery.subscription_id, EventDelivery.ordering_key)
    )
    found = session.execute(
        select(
            EventDelivery.subscription_id,
            EventDelivery.ordering_key,
            EventDelivery.id,
            EventDelivery.next_at,
            EventDelivery.attempts,
        ).where(EventDelivery.id.in_(first_ids))
    ).tuples()
    return {(sub, order): (i, at, n) for sub, order, i, at, n in found}


def _next_in_order(
    session: Session, settled: Sequence[EventDelivery], now: datetime
) -> dict[int, list[Timer]]:
    """For each settled delivery, the one of its order that waited for it, released now."""
    firsts = _firsts(session, settled)
    released: dict[int, list[Timer]] = {}
    for row in settled:
        first = firsts.get((row.subscription_id, row.ordering_key))
        if first is not None and first[0] > row.id:
            released[row.id] = [event_timer(first[0], now)]
    return released
