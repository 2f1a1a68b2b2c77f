"""What-if replay of the campaign draft over the bot's past activity: writes and sends
nothing; a large bot's replay runs as a job whose progress is read by id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from reengage.domain.replay import MAX_DAYS
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, Id
from reengage.services.campaign_replay import ReplayJobs, ReplayRequest

campaign_replay_router = APIRouter(
    prefix="/v1/bots/{bot_id}/campaign/replay",
    tags=["recovery"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


class ReplayIn(BaseModel):
    days: int = Field(default=30, ge=1, le=MAX_DAYS, description="Replay the last N days")
    compare: bool = Field(
        default=True,
        description="Also replay the draft with fixed-time and usual-hour day steps side by "
        "side (the share of sends followed by the contact's activity within 1 h)",
    )


def _jobs(request: Request) -> ReplayJobs:
    jobs: ReplayJobs | None = getattr(request.app.state, "replay_jobs", None)
    if jobs is None:
        jobs = request.app.state.replay_jobs = ReplayJobs()
    return jobs


@campaign_replay_router.post("", status_code=202)
def start_replay(
    request: Request, runtime: RuntimeDep, org_id: OrgId, bot_id: Id, body: ReplayIn
) -> JSONResponse:
    """Run the draft over the last `days` of real activity with a virtual clock, through the
    engine's own decisions: episodes that would have started, messages per step, sends per
    hour against the platform rate, timeout collisions, contacts who came back on their own.
    A small bot's answer holds the result (`status: done`); a large one's a job to poll."""
    job = _jobs(request).start(
        runtime.sessions,
        org_id,
        bot_id,
        ReplayRequest(body.days, body.compare),
        runtime.clock.now(),
    )
    return JSONResponse(job.view(), status_code=200 if job.status != "running" else 202)


@campaign_replay_router.get("/{job_id}")
def get_replay(request: Request, org_id: OrgId, bot_id: Id, job_id: str) -> dict[str, Any]:
    """A replay's state: running (with progress), done (with its result) or failed."""
    return _jobs(request).get(org_id, bot_id, job_id).view()
