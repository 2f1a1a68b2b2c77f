"""Episodes and deliveries: filterable lists with their reasons, a contact's page (their
timeline), stopping one contact's episode, and sending a bot's campaign to oneself now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from reengage.adapters.db.models import Episode
from reengage.domain.console_access import Action
from reengage.entrypoints.api.schemas import Id
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
from reengage.services import episode_control, tenancy
from reengage.services.console_users import SessionUser
from reengage.services.contact_history import (
    Filters,
    contact_history,
    find_contact_id,
    list_deliveries,
    list_episodes,
)
from reengage.services.errors import InvalidInput

episode_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

Viewer = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.VIEW))]
Editor = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.EDIT))]

EPISODE_STATUSES = ("running", "completed", "cancelled", "converted", "stopped")
DELIVERY_STATUSES = ("scheduled", "sending", "sent", "skipped", "failed")
# Why a test send was refused (the service's field) -> the text that says it.
_TEST_SEND_REFUSALS = {
    episode_control.NOT_A_CONTACT: "err_test_not_contact",
    episode_control.UNREACHABLE: "err_test_unreachable",
    episode_control.NO_CAMPAIGN: "err_test_no_campaign",
    episode_control.ALREADY_RAN: "err_test_already_ran",
}


def _day(value: str, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise Refused(422, "err_invalid", field=field) from exc


def _small_int(value: str, field: str) -> int | None:
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18 or int(value) < 1:
        raise Refused(422, "err_invalid", field=field)
    return int(value)


def _filters(request: Request, statuses: tuple[str, ...]) -> tuple[Filters, dict[str, str]]:
    """The list's filters from the query string; a value that cannot be one is a 422 page."""
    query = {k: request.query_params.get(k, "").strip() for k in ("bot", "status", "reason")}
    query |= {k: request.query_params.get(k, "").strip() for k in ("since", "until")}
    if query["status"] and query["status"] not in statuses:
        raise Refused(422, "err_invalid", field="status")
    if len(query["reason"]) > 64 or "\x00" in query["reason"]:
        raise Refused(422, "err_invalid", field="reason")
    until = _day(query["until"], "until")
    filters = Filters(
        bot_id=_small_int(query["bot"], "bot"),
        status=query["status"] or None,
        reason=query["reason"] or None,
        since=_day(query["since"], "since"),
        until=until + timedelta(days=1) if until else None,  # the whole last day
    )
    return filters, query


@episode_router.get("/episodes")
def episodes(request: Request, allowed: Viewer) -> Response:
    user, _ = allowed
    filters, query = _filters(request, EPISODE_STATUSES)
    with runtime_of(request).sessions() as session:
        rows = list_episodes(session, user.org_id, filters)
        bots = tenancy.list_bots(session, user.org_id)
    context = {"rows": rows, "bots": bots, "q": query, "statuses": EPISODE_STATUSES}
    return render(request, "episodes.html", context, user=user)


@episode_router.get("/deliveries")
def deliveries(request: Request, allowed: Viewer) -> Response:
    user, _ = allowed
    filters, query = _filters(request, DELIVERY_STATUSES)
    with runtime_of(request).sessions() as session:
        rows = list_deliveries(session, user.org_id, filters)
        bots = tenancy.list_bots(session, user.org_id)
    context = {"rows": rows, "bots": bots, "q": query, "statuses": DELIVERY_STATUSES}
    return render(request, "deliveries.html", context, user=user)


@episode_router.get("/contacts")
def find_contact(request: Request, allowed: Viewer) -> Response:
    """A contact by bot and id on the channel: their page."""
    user, _ = allowed
    bot_id = _small_int(request.query_params.get("bot", "").strip(), "bot")
    user_id = request.query_params.get("user", "").strip()
    if bot_id is None or not 1 <= len(user_id) <= 128:
        raise Refused(404, "err_not_found")
    with runtime_of(request).sessions() as session:
        contact_id = find_contact_id(session, user.org_id, bot_id, user_id)
    if contact_id is None:
        raise Refused(404, "err_not_found")
    return redirect(f"{PREFIX}/contacts/{contact_id}")


@episode_router.get("/contacts/{contact_id}")
def contact_page(request: Request, allowed: Viewer, contact_id: Id) -> Response:
    user, _ = allowed
    with runtime_of(request).sessions() as session:
        history = contact_history(session, user.org_id, contact_id)
        bot = tenancy.get_bot(session, user.org_id, history.contact.bot_id)
    notice = request.query_params.get("done", "")
    context = {"h": history, "bot": bot, "notice": notice if notice in ("stopped", "sent") else ""}
    return render(request, "contact.html", context, user=user)


@episode_router.post("/episodes/{episode_id}/stop")
async def stop_episode(request: Request, allowed: Editor, episode_id: Id) -> Response:
    """Stop one contact's episode: nothing more of it goes out."""
    user, _ = allowed
    runtime = runtime_of(request)
    await run_in_threadpool(
        episode_control.stop_episode, runtime, user.org_id, episode_id, actor_of(user)
    )
    with runtime.sessions() as session:
        contact_id = _contact_of(session, user.org_id, episode_id)
    return redirect(f"{PREFIX}/contacts/{contact_id}?done=stopped")


def _contact_of(session: Session, org_id: int, episode_id: int) -> int:
    return tenancy.owned(session, Episode, org_id, episode_id).contact_id


@episode_router.post("/send-to-me")
async def send_to_me(request: Request, allowed: Editor) -> Response:
    """Start a bot's campaign now for the operator's own contact on that bot."""
    user, fields = allowed
    bot_id = _small_int(fields.get("bot_id", "").strip(), "bot_id")
    user_id = fields.get("user_id", "").strip()
    if bot_id is None:
        raise Refused(422, "err_invalid", field="bot_id")
    if not 1 <= len(user_id) <= 128:
        raise Refused(422, "err_invalid", field="user_id")
    runtime = runtime_of(request)
    try:
        await run_in_threadpool(
            episode_control.send_campaign_now,
            runtime,
            user.org_id,
            bot_id,
            user_id,
            actor_of(user),
        )
    except InvalidInput as exc:
        key = _TEST_SEND_REFUSALS.get(exc.field or "", "err_invalid")
        raise Refused(422, key, field=exc.field or "?") from exc
    with runtime.sessions() as session:
        contact_id = find_contact_id(session, user.org_id, bot_id, user_id)
    return redirect(f"{PREFIX}/contacts/{contact_id}?done=sent")
