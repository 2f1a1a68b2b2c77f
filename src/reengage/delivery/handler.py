"""The `delivery` timer: one attempt to send a delivery, and what follows it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Delivery
from reengage.delivery.attempt import SendDeps, Want, retry_timer, send_many
from reengage.delivery.outbox import delivery_timer
from reengage.domain.timer import Purpose, Timer
from reengage.timers.handler import Outcome


@dataclass(frozen=True, slots=True)
class DeliveryHandler:
    """Send the row; what has to wait comes back at its time, on the same queue."""

    deps: SendDeps
    purpose: str = Purpose.DELIVERY
    queue: str = "timers"

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        return self.handle_batch([timer], now)[0]

    def handle_batch(self, timers: Sequence[Timer], now: datetime) -> list[Outcome]:
        wants = []
        for timer in timers:
            slot = timer.payload.get("slot_at")
            slot_at = float(slot) if isinstance(slot, int | float) else None
            wants.append(Want(int(timer.payload["delivery_id"] or 0), slot_at))
        attempts = send_many(self.deps, wants, now, may_defer=True)
        outcomes = []
        for timer, attempt in zip(timers, attempts, strict=True):
            queue = timer.payload.get("queue")
            retry = retry_timer(attempt.result, str(queue) if queue else None)
            outcomes.append(
                Outcome(attempt.timers + ([retry] if retry else []), cancel=attempt.cancel)
            )
        return outcomes

    def pending(
        self, session: Session, due_before: datetime | None, after_id: int, limit: int
    ) -> list[tuple[int, Timer]]:
        """Deliveries still to send, as the timers that send them (rebuild and sweep): those
        scheduled, and those an attempt took (`sending`) and never finished — its process
        died, or lost its timer with Redis. Such a row's next attempt knows what to do: send
        what surely did not leave, wait for what is in flight, settle what is ambiguous."""
        due = case(
            (
                Delivery.status == "sending",
                func.coalesce(Delivery.sending_at, Delivery.scheduled_at),
            ),
            else_=Delivery.scheduled_at,
        )
        stmt = (
            select(Delivery.id, due)
            .where(Delivery.status.in_(("scheduled", "sending")), Delivery.id > after_id)
            .order_by(Delivery.id)
            .limit(limit)
        )
        if due_before is not None:
            stmt = stmt.where(due <= due_before)
        return [(i, delivery_timer(i, at)) for i, at in session.execute(stmt)]
