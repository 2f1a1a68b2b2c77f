"""The `delivery` timer: one attempt to send a delivery, and what follows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Delivery
from reengage.delivery.attempt import SendDeps, retry_timer, send
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
        slot = timer.payload.get("slot_at")
        attempt = send(
            self.deps,
            int(timer.payload["delivery_id"] or 0),
            now,
            may_defer=True,
            slot_at=float(slot) if isinstance(slot, int | float) else None,
        )
        queue = timer.payload.get("queue")
        retry = retry_timer(attempt.result, str(queue) if queue else None)
        return Outcome(attempt.timers + ([retry] if retry else []), cancel=attempt.cancel)

    def pending(
        self, session: Session, due_before: datetime | None, after_id: int, limit: int
    ) -> list[tuple[int, Timer]]:
        """Deliveries still to send, as the timers that send them (rebuild and sweep)."""
        stmt = (
            select(Delivery.id, Delivery.scheduled_at)
            .where(Delivery.status == "scheduled", Delivery.id > after_id)
            .order_by(Delivery.id)
            .limit(limit)
        )
        if due_before is not None:
            stmt = stmt.where(Delivery.scheduled_at <= due_before)
        return [(i, delivery_timer(i, at)) for i, at in session.execute(stmt)]
