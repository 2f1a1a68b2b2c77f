"""`POST /v1/events`: record activity."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body

from reengage.domain.activity import ActivityEvent, Inbound
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, EventBatch, EventIn, RecordOut
from reengage.metrics import EVENTS_RECORDED
from reengage.services.errors import InvalidInput

events_router = APIRouter(prefix="/v1", tags=["activity"])

# Clocks of senders drift; an event further ahead than this is refused, not trusted.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def to_domain(events: list[EventIn], now: datetime) -> list[ActivityEvent]:
    """Domain events, with `occurred_at` defaulted to now and refused when in the future."""
    out = []
    for index, e in enumerate(events):
        at = e.occurred_at or now
        if at > now + MAX_CLOCK_SKEW:
            raise InvalidInput("occurred_at is in the future", f"events[{index}].occurred_at")
        said = None
        if e.text is not None or e.name is not None or e.time_zone is not None:
            said = Inbound(e.text, e.name, e.time_zone)
        out.append(ActivityEvent(e.id, e.type, e.bot_id, e.user_id, at, e.status, said))
    return out


@events_router.post(
    "/events",
    response_model=RecordOut,
    responses={401: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def post_events(
    runtime: RuntimeDep, org_id: OrgId, body: Annotated[EventBatch | EventIn, Body()]
) -> RecordOut:
    """Record one event, or a batch as `{"events": [...]}` (up to 1,000).

    Each event moves its conversation's clocks and its one pending inactivity timer. A batch
    is atomic: one invalid event (the error names it, e.g. `events[3].bot_id`) applies none.
    Retrying with the same event ids is safe: they are counted as duplicates.
    """
    single = isinstance(body, EventIn)
    batch = [body] if isinstance(body, EventIn) else body.events
    try:
        result = runtime.record(org_id, to_domain(batch, runtime.clock.now()))
    except InvalidInput as exc:
        if single and exc.field:
            exc.field = exc.field.removeprefix("events[0].")
        raise
    EVENTS_RECORDED.labels("accepted").inc(result.accepted)
    EVENTS_RECORDED.labels("duplicate").inc(result.duplicates)
    return RecordOut(accepted=result.accepted, duplicates=result.duplicates)
