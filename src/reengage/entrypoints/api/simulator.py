"""The simulator channel's chat: a web page where a person plays a bot's end user."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from reengage.adapters.db.models import SimulatorMessage
from reengage.domain.activity import ActivityEvent, ChannelKind, EventType, Inbound
from reengage.domain.bounds import MAX_BIGINT
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, Id, Text, UserId
from reengage.i18n import N_
from reengage.services.errors import InvalidInput
from reengage.services.tenancy import get_bot, scoped

simulator_router = APIRouter(tags=["simulator"])
_PAGE = Path(__file__).with_name("simulator.html")


class SimulatorMessageIn(BaseModel):
    chat_id: UserId
    text: Text = Field(min_length=1, max_length=4096)


class SimulatorMessageOut(BaseModel):
    id: int
    chat_id: str
    direction: str
    kind: str
    text: str | None
    media_name: str | None
    created_at: datetime
    deleted: bool


def _out(m: SimulatorMessage) -> SimulatorMessageOut:
    return SimulatorMessageOut(
        id=m.id,
        chat_id=m.chat_id,
        direction=m.direction,
        kind=m.kind,
        text=m.text,
        media_name=m.media_name,
        created_at=m.created_at,
        deleted=m.deleted_at is not None,
    )


@simulator_router.get("/simulator", response_class=HTMLResponse, include_in_schema=False)
def simulator_page() -> HTMLResponse:
    """The chat page (it asks for an API key and talks to the endpoints below)."""
    return HTMLResponse(_PAGE.read_text(encoding="utf-8"))


def _simulator_bot(runtime: RuntimeDep, org_id: int, bot_id: int) -> None:
    with runtime.sessions() as session:
        if get_bot(session, org_id, bot_id).channel != ChannelKind.SIMULATOR.value:
            raise InvalidInput(N_("bot {bot_id} is not a simulator bot"), "bot_id", bot_id=bot_id)


@simulator_router.get(
    "/v1/simulator/{bot_id}/messages",
    response_model=list[SimulatorMessageOut],
    responses={404: {"model": ErrorOut}},
)
def list_messages(
    runtime: RuntimeDep,
    org_id: OrgId,
    bot_id: Id,
    chat_id: UserId,
    after: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
) -> list[SimulatorMessageOut]:
    """The chat between the simulated user `chat_id` and the bot, after message id `after`."""
    _simulator_bot(runtime, org_id, bot_id)
    with runtime.sessions() as session:
        rows = session.scalars(
            scoped(
                SimulatorMessage,
                org_id,
                SimulatorMessage.bot_id == bot_id,
                SimulatorMessage.chat_id == chat_id,
                SimulatorMessage.id > after,
            ).order_by(SimulatorMessage.id)
        )
        return [_out(m) for m in rows]


@simulator_router.post(
    "/v1/simulator/{bot_id}/messages",
    response_model=SimulatorMessageOut,
    status_code=201,
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def user_says(
    runtime: RuntimeDep,
    org_id: OrgId,
    bot_id: Id,
    body: SimulatorMessageIn,
) -> SimulatorMessageOut:
    """The simulated user writes to the bot: the message is shown and recorded as activity."""
    _simulator_bot(runtime, org_id, bot_id)
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        row = SimulatorMessage(
            org_id=org_id,
            bot_id=bot_id,
            chat_id=body.chat_id,
            direction="in",
            kind="text",
            text=body.text,
            created_at=now,
        )
        session.add(row)
        session.flush()
        out = _out(row)
    # Keywords and the bot's flow answer it, once, through the inbound timer.
    said = Inbound(body.text)
    runtime.record(
        org_id,
        [
            ActivityEvent(
                f"sim:{out.id}", EventType.USER_MESSAGE, bot_id, body.chat_id, now, None, said
            )
        ],
    )
    return out
