"""A campaign's results: the funnel per version and step, the holdout's lift, and the episodes
and deliveries behind them (paged, or as CSV)."""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field

from reengage.domain import results as res
from reengage.domain.duration import format_duration
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, Id
from reengage.i18n import N_
from reengage.runtime import Runtime
from reengage.services import campaign_results as cr
from reengage.services.errors import InvalidInput

campaign_results_router = APIRouter(
    tags=["recovery"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)

MINIMUM = (
    f"each arm at least {res.MIN_EPISODES} episodes, both arms together at least "
    f"{res.MIN_SUCCESSES} successes"
)


class LiftOut(BaseModel):
    enough_data: bool = Field(description=f"False below the minimum: {MINIMUM}")
    treatment_rate: float
    holdout_rate: float
    difference: float | None = Field(description="treatment rate - holdout rate")
    ci_low: float | None
    ci_high: float | None
    confidence: float = 0.95
    method: str = Field(
        default=res.LIFT_METHOD,
        description="Newcombe's hybrid score interval (Wilson intervals of each rate, combined)",
    )


class SkipOut(BaseModel):
    reason: str
    count: int


class StepArmOut(BaseModel):
    reached: int = Field(description="Episodes that reached the step (its first block written)")
    sent: int
    delivered: int | None = Field(description="WhatsApp: delivered or read; elsewhere: sent")
    read: int | None = Field(description="WhatsApp only (None elsewhere)")
    failed: int
    pending: int = Field(description="Still scheduled or being sent")
    skipped: list[SkipOut]
    returned: int = Field(description="Came back within the return window after this step")
    converted: int = Field(description="Paid within the conversion window after this step")
    opted_out: int
    blocked: int


class StepOut(BaseModel):
    step: int
    treatment: StepArmOut
    holdout: StepArmOut = Field(description="The holdout's steps are reached, never sent")


class ArmOut(BaseModel):
    started: int
    returned: int
    converted: int
    opted_out: int
    blocked: int


class VersionOut(BaseModel):
    version: int
    return_window: str
    conversion_window: str
    treatment: ArmOut
    holdout: ArmOut
    steps: list[StepOut]
    return_lift: LiftOut
    conversion_lift: LiftOut


class ResultsOut(BaseModel):
    bot_id: int
    from_: datetime | None = Field(serialization_alias="from")
    to: datetime | None
    version: int | None
    receipts: bool = Field(description="The channel reports delivered and read (WhatsApp)")
    versions: list[VersionOut]


def lift_out(lift: res.Lift) -> LiftOut:
    (s1, n1), (s2, n2) = lift.treatment, lift.holdout
    return LiftOut(
        enough_data=lift.enough_data,
        treatment_rate=s1 / n1 if n1 else 0.0,
        holdout_rate=s2 / n2 if n2 else 0.0,
        difference=lift.difference,
        ci_low=lift.low,
        ci_high=lift.high,
    )


def _step_arm(s: res.StepCounts) -> StepArmOut:
    return StepArmOut(
        reached=s.reached,
        sent=s.sent,
        delivered=s.delivered,
        read=s.read,
        failed=s.failed,
        pending=s.pending,
        skipped=[SkipOut(reason=r, count=n) for r, n in sorted(s.skipped.items())],
        returned=s.returned,
        converted=s.converted,
        opted_out=s.opted_out,
        blocked=s.blocked,
    )


def _arm(a: res.ArmCounts) -> ArmOut:
    return ArmOut(
        started=a.started,
        returned=a.returned,
        converted=a.converted,
        opted_out=a.opted_out,
        blocked=a.blocked,
    )


def results_out(results: cr.Results, filters: cr.Filters) -> ResultsOut:
    default = cr.Windows(res.DEFAULT_RETURN_WINDOW, res.DEFAULT_CONVERSION_WINDOW)
    versions = []
    for v in results.versions:
        windows = results.windows.get(v.version, default)
        versions.append(
            VersionOut(
                version=v.version,
                return_window=format_duration(windows.return_window),
                conversion_window=format_duration(windows.conversion_window),
                treatment=_arm(v.treatment),
                holdout=_arm(v.holdout),
                steps=[
                    StepOut(step=i, treatment=_step_arm(t), holdout=_step_arm(h))
                    for i, (t, h) in sorted(v.steps.items())
                ],
                return_lift=lift_out(v.return_lift),
                conversion_lift=lift_out(v.conversion_lift),
            )
        )
    return ResultsOut(
        bot_id=results.bot_id,
        from_=filters.start,
        to=filters.end,
        version=filters.version,
        receipts=results.receipts,
        versions=versions,
    )


From = Annotated[
    AwareDatetime | None, Query(alias="from", description="Episodes started at or after this")
]
To = Annotated[AwareDatetime | None, Query(description="Episodes started before this")]
Version = Annotated[Id | None, Query(description="One campaign version")]


def _filters(start: From = None, to: To = None, version: Version = None) -> cr.Filters:
    """The query's filters, shared by the results, their listings and their exports."""
    return cr.Filters(start, to, version).check()


Filters = Annotated[cr.Filters, Depends(_filters)]


@campaign_results_router.get(
    "/v1/bots/{bot_id}/campaign/results",
    response_model=ResultsOut,
    response_model_by_alias=True,
)
def results(
    runtime: RuntimeDep,
    org_id: OrgId,
    bot_id: Id,
    filters: Filters,
) -> ResultsOut:
    """Whether the campaign works, per version and step, for episodes started in
    [`from`, `to`): started (treatment and holdout apart), each step reached, sent,
    delivered and read (WhatsApp), failed, skipped by reason; the returns and payments
    credited to it (within the campaign's `return_window`, default 24h, and
    `conversion_window`, default 7d, after the last step the contact received — after the
    campaign's last step too), opt-outs and blocks; and the lift of the return and
    conversion rates over the holdout with a 95 % interval (Newcombe's hybrid score), or
    `enough_data: false` below each arm 30 episodes and 5 successes in both together."""
    with runtime.sessions() as session:
        return results_out(cr.campaign_results(session, org_id, bot_id, filters), filters)


@campaign_results_router.get(
    "/v1/bots/{bot_id}/campaign/stats",
    response_model=ResultsOut,
    response_model_by_alias=True,
    deprecated=True,
)
def stats(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> ResultsOut:
    """The campaign's results over all its history: `GET .../campaign/results` without
    filters (kept for clients of the former per-step counts)."""
    return results(runtime, org_id, bot_id, _filters())


# --- the episodes and deliveries behind the numbers ----------------------------------------


def _cursor(after_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{after_id}".encode()).decode().rstrip("=")


def _after(cursor: str | None) -> int:
    if not cursor:
        return 0
    kind = ""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        after = int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        after = -1
    if kind != "id" or not 0 <= after < 2**63:
        raise InvalidInput(N_("not a cursor this API gave"), "cursor")
    return after


Cursor = Annotated[
    str | None, Query(max_length=64, description="`next_cursor` of the previous page")
]
Limit = Annotated[int, Query(ge=1, le=1000)]


class EpisodeRowOut(BaseModel):
    id: int
    contact_id: int
    version: int
    holdout: bool
    status: str
    end_reason: str | None
    last_step: int | None
    started_at: datetime
    last_sent_at: datetime | None
    ended_at: datetime | None
    returned_at: datetime | None
    converted_at: datetime | None


class DeliveryRowOut(BaseModel):
    id: int
    episode_id: int | None
    contact_id: int
    step: int | None
    dedup_key: str
    status: str
    reason: str | None
    platform_status: str | None
    scheduled_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None


class EpisodePage(BaseModel):
    items: list[EpisodeRowOut]
    next_cursor: str | None = Field(description="None on the last page")


class DeliveryPage(BaseModel):
    items: list[DeliveryRowOut]
    next_cursor: str | None = Field(description="None on the last page")


def _next(rows: list[Any], limit: int) -> str | None:
    return _cursor(rows[-1].id) if len(rows) == limit else None


@campaign_results_router.get(
    "/v1/bots/{bot_id}/campaign/results/episodes", response_model=EpisodePage
)
def list_episodes(
    runtime: RuntimeDep,
    org_id: OrgId,
    bot_id: Id,
    filters: Filters,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> EpisodePage:
    """The episodes counted by the results (same filters), oldest first, a page at a time."""
    after = _after(cursor)
    with runtime.sessions() as session:
        rows = cr.episode_page(session, org_id, bot_id, filters, after, limit)
        items = [EpisodeRowOut.model_validate(r, from_attributes=True) for r in rows]
    return EpisodePage(items=items, next_cursor=_next(rows, limit))


@campaign_results_router.get(
    "/v1/bots/{bot_id}/campaign/results/deliveries", response_model=DeliveryPage
)
def list_deliveries(
    runtime: RuntimeDep,
    org_id: OrgId,
    bot_id: Id,
    filters: Filters,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> DeliveryPage:
    """The deliveries of the episodes counted by the results (same filters), oldest first."""
    after = _after(cursor)
    with runtime.sessions() as session:
        rows = cr.delivery_page(session, org_id, bot_id, filters, after, limit)
        items = [DeliveryRowOut.model_validate(r, from_attributes=True) for r in rows]
    return DeliveryPage(items=items, next_cursor=_next(rows, limit))


def _csv(
    runtime: Runtime,
    model: type[BaseModel],
    page: Callable[..., list[Any]],
    args: tuple[Any, ...],
    name: str,
) -> StreamingResponse:
    with runtime.sessions() as session:  # a bad filter or bot is a 4xx, before any byte
        page(session, *args, 0, 1)
    columns = list(model.model_fields)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        with runtime.sessions() as session:
            for row in cr.all_pages(page, session, *args):
                out = model.model_validate(row, from_attributes=True).model_dump()
                writer.writerow(["" if out[c] is None else _cell(out[c]) for c in columns])
                if buffer.tell() > 64_000:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)


def _cell(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


@campaign_results_router.get(
    "/v1/bots/{bot_id}/campaign/results/episodes.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def episodes_csv(
    runtime: RuntimeDep,
    org_id: OrgId,
    bot_id: Id,
    filters: Filters,
) -> StreamingResponse:
    """Every episode the results count (same filters), as CSV, streamed."""
    args = (org_id, bot_id, filters)
    return _csv(runtime, EpisodeRowOut, cr.episode_page, args, f"episodes-bot-{bot_id}.csv")


@campaign_results_router.get(
    "/v1/bots/{bot_id}/campaign/results/deliveries.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def deliveries_csv(
    runtime: RuntimeDep,
    org_id: OrgId,
    bot_id: Id,
    filters: Filters,
) -> StreamingResponse:
    """Every delivery of the episodes the results count (same filters), as CSV, streamed."""
    args = (org_id, bot_id, filters)
    return _csv(runtime, DeliveryRowOut, cr.delivery_page, args, f"deliveries-bot-{bot_id}.csv")
