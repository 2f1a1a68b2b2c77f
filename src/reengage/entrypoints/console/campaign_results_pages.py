"""A campaign's version history (diff, roll back) and its results: the funnel per step as
charts, the holdout's lift with its interval, sends and lateness day by day, CSV exports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from reengage.domain import results as res
from reengage.domain import send_series
from reengage.domain.console_access import Action
from reengage.entrypoints.api.campaign_results import DeliveryRowOut, EpisodeRowOut, _csv
from reengage.entrypoints.api.schemas import Id
from reengage.entrypoints.console.campaign_pages import campaign_url
from reengage.entrypoints.console.pages import actor_of
from reengage.entrypoints.console.web import (
    PREFIX,
    Allowed,
    ConsoleRoute,
    Refused,
    redirect,
    render,
    runtime_of,
)
from reengage.services import campaign_results as cr
from reengage.services.campaign_history import diff, get_version, list_versions, roll_back
from reengage.services.campaign_series import delivery_days
from reengage.services.console_users import SessionUser
from reengage.services.tenancy import get_bot

results_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

Viewer = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.VIEW))]
Editor = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.EDIT))]


# --- version history ------------------------------------------------------------------------


@results_router.get("/bots/{bot_id}/campaign/versions/{version}")
def version_page(
    request: Request,
    allowed: Viewer,
    bot_id: Id,
    version: Id,
    against: Annotated[Id | None, Query()] = None,
) -> Response:
    """One published version, and what changed since `against` (default: the one before)."""
    user, _ = allowed
    with runtime_of(request).sessions() as session:
        bot = get_bot(session, user.org_id, bot_id)
        shown = get_version(session, user.org_id, bot_id, version)
        versions = list_versions(session, user.org_id, bot_id)
        base = against if against is not None else version - 1
        old = get_version(session, user.org_id, bot_id, base).definition if base >= 1 else {}
        lines = diff(dict(old), dict(shown.definition))
        latest = versions[0].version
    context = {
        "bot": bot,
        "shown": shown,
        "versions": versions,
        "against": base,
        "lines": lines,
        "latest": latest,
    }
    return render(request, "campaign_version.html", context, user=user)


@results_router.post("/bots/{bot_id}/campaign/versions/{version}/rollback")
async def rollback(request: Request, allowed: Editor, bot_id: Id, version: Id) -> Response:
    """The version's content becomes the draft again and is published as a new version."""
    user, _ = allowed
    runtime = runtime_of(request)

    def run() -> int:
        with runtime.sessions.begin() as session:
            now = runtime.clock.now()
            return roll_back(session, user.org_id, bot_id, version, now, actor_of(user))

    new = await run_in_threadpool(run)
    return redirect(campaign_url(bot_id, f"/versions/{new}"))


# --- results --------------------------------------------------------------------------------


def _day(value: str, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise Refused(422, "err_invalid", field=field) from exc


def _filters(
    start: Annotated[str, Query(alias="from", max_length=10)] = "",
    to: Annotated[str, Query(max_length=10)] = "",
    version: Annotated[str, Query(max_length=10)] = "",
) -> cr.Filters:
    """`from` and `to` are days (UTC, both included); `version` one version or any."""
    end = _day(to, "to")
    if not version:
        number = None
    elif version.isdigit() and 1 <= int(version) <= 2**31:
        number = int(version)
    else:
        raise Refused(422, "err_invalid", field="version")
    filters = cr.Filters(_day(start, "from"), end + timedelta(days=1) if end else None, number)
    if not res.valid_range(filters.start, filters.end):
        raise Refused(422, "err_invalid", field="to")
    return filters


Filters = Annotated[cr.Filters, Depends(_filters)]


def bars(rows: list[tuple[str, int | None]]) -> list[dict[str, Any]]:
    """Rows of a horizontal bar chart: label, value and the bar's share of the longest."""
    top = max([v or 0 for _, v in rows] + [1])
    return [
        {"label": label, "value": value, "width": round(100 * (value or 0) / top, 1)}
        for label, value in rows
        if value is not None
    ]


def _lift(lift: res.Lift) -> dict[str, Any]:
    (s1, n1), (s2, n2) = lift.treatment, lift.holdout

    def at(x: float) -> float:  # -100 pp .. +100 pp onto 0 .. 100 % of the chart
        return round(50 + 50 * max(-1.0, min(1.0, x)), 1)

    out: dict[str, Any] = {
        "enough": lift.enough_data,
        "treatment": s1 / n1 if n1 else 0.0,
        "holdout": s2 / n2 if n2 else 0.0,
        "counts": (s1, n1, s2, n2),
    }
    if lift.difference is not None and lift.low is not None and lift.high is not None:
        out |= {
            "difference": lift.difference,
            "low": lift.low,
            "high": lift.high,
            "x": at(lift.difference),
            "x_low": at(lift.low),
            "x_high": at(lift.high),
        }
    return out


def _version_view(v: res.VersionResults, receipts: bool) -> dict[str, Any]:
    steps = []
    for index, (t, _h) in sorted(v.steps.items()):
        rows: list[tuple[str, int | None]] = [
            ("started", v.treatment.started),
            ("reached", t.reached),
            ("sent", t.sent),
            ("delivered", t.delivered if receipts else None),
            ("read", t.read if receipts else None),
            ("returned", t.returned),
            ("converted", t.converted),
        ]
        skipped = sum(t.skipped.values())
        steps.append({"index": index, "bars": bars(rows), "failed": t.failed, "skipped": skipped})
    return {
        "version": v.version,
        "treatment": v.treatment,
        "holdout": v.holdout,
        "steps": steps,
        "return_lift": _lift(v.return_lift),
        "conversion_lift": _lift(v.conversion_lift),
    }


def _seconds(value: timedelta | None) -> str:
    if value is None:
        return "—"
    ms = value / timedelta(milliseconds=1)
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.0f} s"


def _day_view(d: send_series.Day) -> dict[str, Any]:
    rate = d.rate
    return {
        "day": d.day.isoformat(),
        "sent": d.sent,
        "failed": d.failed,
        "skipped": d.skipped,
        "rate": "—" if rate is None else f"{rate * 100:.1f} %",
        "rate_pct": round(100 * (rate or 0)),
        "late_p50": _seconds(d.late_p50),
        "late_max": _seconds(d.late_max),
    }


def _query(filters: cr.Filters) -> str:
    parts = []
    if filters.start:
        parts.append(f"from={filters.start:%Y-%m-%d}")
    if filters.end:
        parts.append(f"to={filters.end - timedelta(days=1):%Y-%m-%d}")
    if filters.version:
        parts.append(f"version={filters.version}")
    return "&".join(parts)


@results_router.get("/bots/{bot_id}/campaign/results")
def results_page(request: Request, allowed: Viewer, bot_id: Id, filters: Filters) -> Response:
    user, _ = allowed
    with runtime_of(request).sessions() as session:
        bot = get_bot(session, user.org_id, bot_id)
        results = cr.campaign_results(session, user.org_id, bot_id, filters)
        days = delivery_days(session, user.org_id, bot_id, filters)
        versions = list_versions(session, user.org_id, bot_id)
    context = {
        "bot": bot,
        "results": [_version_view(v, results.receipts) for v in results.versions],
        "receipts": results.receipts,
        "days": [_day_view(d) for d in days],
        "versions": versions,
        "filters": filters,
        "to_day": filters.end - timedelta(days=1) if filters.end else None,
        "query": _query(filters),
    }
    return render(request, "campaign_results.html", context, user=user)


@results_router.get("/bots/{bot_id}/campaign/results/episodes.csv")
def episodes_csv(request: Request, allowed: Viewer, bot_id: Id, filters: Filters) -> Response:
    """The episodes the page counts, as CSV (the API's export, behind the console's login)."""
    args = (allowed[0].org_id, bot_id, filters)
    name = f"episodes-bot-{bot_id}.csv"
    return _csv(runtime_of(request), EpisodeRowOut, cr.episode_page, args, name)


@results_router.get("/bots/{bot_id}/campaign/results/deliveries.csv")
def deliveries_csv(request: Request, allowed: Viewer, bot_id: Id, filters: Filters) -> Response:
    args = (allowed[0].org_id, bot_id, filters)
    name = f"deliveries-bot-{bot_id}.csv"
    return _csv(runtime_of(request), DeliveryRowOut, cr.delivery_page, args, name)
