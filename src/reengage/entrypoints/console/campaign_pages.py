"""The campaign editor: settings, steps, blocks (text, media upload, WhatsApp templates), effects,
exclusions, the live timeline preview, publish and the switch. Every edit goes through the
same draft edits and checks as the API and the manager bot, and is audit-logged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from reengage.adapters.db.models import MediaAsset
from reengage.domain import campaign_draft as cd
from reengage.domain.console_access import Action
from reengage.domain.schedule import ScheduleError
from reengage.entrypoints.api.campaigns import audit_campaign
from reengage.entrypoints.api.schemas import Id, Index
from reengage.entrypoints.console.pages import actor_of
from reengage.entrypoints.console.texts import text
from reengage.entrypoints.console.web import (
    PREFIX,
    Allowed,
    ConsoleRoute,
    language_of,
    redirect,
    render,
    runtime_of,
)
from reengage.services import campaigns
from reengage.services.campaign_edit import current_draft, edit_draft
from reengage.services.campaign_history import list_versions
from reengage.services.campaign_preview import preview_campaign
from reengage.services.console_users import SessionUser
from reengage.services.errors import InvalidInput, NotFound
from reengage.services.media import store_media
from reengage.services.tenancy import get_bot, scoped

campaign_router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

Viewer = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.VIEW))]
Editor = Annotated[tuple[SessionUser, dict[str, str]], Depends(Allowed(Action.EDIT))]
MEDIA_KINDS = ("photo", "document", "video", "audio", "animation")
TEXT_MAX = 4096
# Messages of the services the editor says in the operator's language.
_KNOWN = {
    "template blocks are for WhatsApp bots": "err_template_channel",
    "publish the campaign before enabling it": "err_publish_first",
}


def campaign_url(bot_id: int, tail: str = "") -> str:
    return f"{PREFIX}/bots/{bot_id}/campaign{tail}"


def editor_page(
    request: Request, user: SessionUser, bot_id: int, error: str | None = None, status: int = 200
) -> Response:
    runtime = runtime_of(request)
    language = language_of(request)
    with runtime.sessions() as session:
        bot = get_bot(session, user.org_id, bot_id)
        draft = current_draft(session, user.org_id, bot_id)
        try:
            row = campaigns.get_campaign(session, user.org_id, bot_id)
        except NotFound:
            row = None
        warnings = campaigns.warnings(session, row, language) if row is not None else []
        versions = list_versions(session, user.org_id, bot_id)
        ids = {
            b["asset_id"]
            for s in draft.get("steps", [])
            for b in s.get("blocks", [])
            if isinstance(b.get("asset_id"), int)
        }
        assets = {
            a.id: a.filename
            for a in session.scalars(scoped(MediaAsset, user.org_id, MediaAsset.id.in_(ids)))
        }
    context = {
        "bot": bot,
        "row": row,
        "draft": draft,
        "steps": draft.get("steps", []),
        "exclusions": draft.get("exclusions", []),
        "warnings": warnings,
        "versions": versions,
        "assets": assets,
        "error": error,
        "media_kinds": MEDIA_KINDS,
    }
    return render(request, "campaign.html", context, status=status, user=user)


@campaign_router.get("/bots/{bot_id}/campaign")
def campaign_editor(request: Request, allowed: Viewer, bot_id: Id) -> Response:
    return editor_page(request, allowed[0], bot_id)


def _message(request: Request, exc: Exception) -> str:
    language = language_of(request)
    if isinstance(exc, ScheduleError | cd.DraftError):
        return exc.message(language)
    assert isinstance(exc, InvalidInput)
    if exc.message in _KNOWN:
        return text(language, _KNOWN[exc.message])
    return text(language, "err_invalid", field=f"{exc.field or '?'}: {exc.message}")


async def _change(
    request: Request,
    user: SessionUser,
    bot_id: int,
    change: Callable[[Any], object],
    action: str = "campaign.edit",
) -> Response:
    """Run `change(session)` in one transaction with its audit entry; a refused change
    stores nothing and shows the editor again with the reason."""
    runtime = runtime_of(request)

    def run() -> None:
        now = runtime.clock.now()
        with runtime.sessions.begin() as session:
            before = campaigns.campaign_state(session, user.org_id, bot_id)
            change(session)
            audit_campaign(session, user.org_id, actor_of(user), bot_id, action, now, before)

    try:
        await run_in_threadpool(run)
    except (ScheduleError, cd.DraftError, InvalidInput) as exc:
        return editor_page(request, user, bot_id, _message(request, exc), status=422)
    return redirect(campaign_url(bot_id))


async def _edit(
    request: Request, user: SessionUser, bot_id: int, edit: Callable[[dict[str, Any]], cd.Draft]
) -> Response:
    now = runtime_of(request).clock.now()
    return await _change(
        request, user, bot_id, lambda s: edit_draft(s, user.org_id, bot_id, edit, now)
    )


def _settings(fields: dict[str, str]) -> Callable[[dict[str, Any]], cd.Draft]:
    def edit(draft: dict[str, Any]) -> cd.Draft:
        new = cd.set_time_zone(draft, fields.get("time_zone", "") or "America/Sao_Paulo")
        new = cd.set_threshold(new, fields.get("threshold", "") or "10m")
        new = cd.set_window(new, fields.get("send_window", "").strip() or "-")
        return cd.set_ignore_paid(new, fields.get("ignore_paid") == "on")

    return edit


@campaign_router.post("/bots/{bot_id}/campaign/settings")
async def save_settings(request: Request, allowed: Editor, bot_id: Id) -> Response:
    user, fields = allowed
    return await _edit(request, user, bot_id, _settings(fields))


@campaign_router.post("/bots/{bot_id}/campaign/steps")
async def add_step(request: Request, allowed: Editor, bot_id: Id) -> Response:
    user, fields = allowed
    schedule = fields.get("schedule", "")[:200]
    return await _edit(request, user, bot_id, lambda d: cd.add_step(d, schedule))


@campaign_router.post("/bots/{bot_id}/campaign/steps/{step}/schedule")
async def set_schedule(request: Request, allowed: Editor, bot_id: Id, step: Index) -> Response:
    user, fields = allowed
    schedule = fields.get("schedule", "")[:200]
    return await _edit(request, user, bot_id, lambda d: cd.set_schedule(d, step, schedule))


@campaign_router.post("/bots/{bot_id}/campaign/steps/{step}/move")
async def move_step(request: Request, allowed: Editor, bot_id: Id, step: Index) -> Response:
    user, fields = allowed
    offset = -1 if fields.get("offset") == "up" else 1
    return await _edit(request, user, bot_id, lambda d: cd.move_step(d, step, offset))


@campaign_router.post("/bots/{bot_id}/campaign/steps/{step}/delete")
async def delete_step(request: Request, allowed: Editor, bot_id: Id, step: Index) -> Response:
    user, _ = allowed
    return await _edit(request, user, bot_id, lambda d: cd.delete_step(d, step))


def _add_template(
    step: int, name: str, language: str, parameters: list[str]
) -> Callable[[dict[str, Any]], cd.Draft]:
    def edit(draft: dict[str, Any]) -> cd.Draft:
        new = cd.add_text_block(draft, step, "-")  # checks the step exists
        template = {"name": name, "language": language, "parameters": parameters}
        new["steps"][step]["blocks"][-1] = {"kind": "template", "template": template}
        return cd.checked(new)

    return edit


@campaign_router.post("/bots/{bot_id}/campaign/steps/{step}/blocks")
async def add_block(request: Request, allowed: Editor, bot_id: Id, step: Index) -> Response:
    """A text, media (uploaded with the form) or WhatsApp template block at the step's end."""
    user, fields = allowed
    kind = fields.get("kind", "text")
    if kind == "text":
        body = fields.get("text", "")
        if not 1 <= len(body.strip()) <= TEXT_MAX:
            return editor_page(request, user, bot_id, _invalid(request, "text"), status=422)
        return await _edit(request, user, bot_id, lambda d: cd.add_text_block(d, step, body))
    if kind == "template":
        name, lang = fields.get("template", "").strip(), fields.get("language", "").strip()
        params = [p.strip() for p in fields.get("parameters", "").split(",") if p.strip()]
        if not name or not lang:
            return editor_page(request, user, bot_id, _invalid(request, "template"), status=422)
        edit = _add_template(step, name[:512], lang[:16], params)
        return await _edit(request, user, bot_id, edit)
    if kind not in MEDIA_KINDS:
        return editor_page(request, user, bot_id, _invalid(request, "kind"), status=422)
    upload = (await request.form()).get("file")
    if not isinstance(upload, UploadFile):
        return editor_page(request, user, bot_id, _invalid(request, "file"), status=422)
    caption = fields.get("caption", "").strip() or None
    runtime = runtime_of(request)
    now = runtime.clock.now()

    def change(session: Any) -> None:
        asset = store_media(
            session,
            runtime.media,
            user.org_id,
            filename=upload.filename or "file",
            content_type=upload.content_type or "application/octet-stream",
            stream=upload.file,  # the form's spooled copy, read in chunks
            now=now,
        )
        edit_draft(
            session,
            user.org_id,
            bot_id,
            lambda d: cd.add_media_block(d, step, kind, asset.id, caption),
            now,
        )

    return await _change(request, user, bot_id, change)


def _invalid(request: Request, field: str) -> str:
    return text(language_of(request), "err_invalid", field=field)


@campaign_router.post("/bots/{bot_id}/campaign/steps/{step}/blocks/{block}/effects")
async def set_effects(
    request: Request, allowed: Editor, bot_id: Id, step: Index, block: Index
) -> Response:
    """Typing/uploading before the send, and the auto-delete after it."""
    user, fields = allowed
    delay = fields.get("delay", "").strip() or "0s"
    after = fields.get("auto_delete_after", "").strip() or "-"

    def edit(draft: dict[str, Any]) -> cd.Draft:
        return cd.set_auto_delete(cd.set_delay(draft, step, block, delay), step, block, after)

    return await _edit(request, user, bot_id, edit)


@campaign_router.post("/bots/{bot_id}/campaign/steps/{step}/blocks/{block}/delete")
async def delete_block(
    request: Request, allowed: Editor, bot_id: Id, step: Index, block: Index
) -> Response:
    user, _ = allowed
    return await _edit(request, user, bot_id, lambda d: cd.delete_block(d, step, block))


@campaign_router.post("/bots/{bot_id}/campaign/exclusions")
async def add_exclusion(request: Request, allowed: Editor, bot_id: Id) -> Response:
    user, fields = allowed
    who = fields.get("user_id", "")[:200]
    return await _edit(request, user, bot_id, lambda d: cd.add_exclusion(d, who))


@campaign_router.post("/bots/{bot_id}/campaign/exclusions/remove")
async def remove_exclusion(request: Request, allowed: Editor, bot_id: Id) -> Response:
    user, fields = allowed
    who = fields.get("user_id", "")[:200]
    return await _edit(request, user, bot_id, lambda d: cd.remove_exclusion(d, who))


@campaign_router.post("/bots/{bot_id}/campaign/publish")
async def publish(request: Request, allowed: Editor, bot_id: Id) -> Response:
    """Freeze the draft as the next version."""
    user, _ = allowed
    now = runtime_of(request).clock.now()

    def change(session: Any) -> None:
        campaigns.publish(session, user.org_id, bot_id, now)

    return await _change(request, user, bot_id, change, "campaign.publish")


@campaign_router.post("/bots/{bot_id}/campaign/enabled")
async def set_enabled(request: Request, allowed: Editor, bot_id: Id) -> Response:
    user, fields = allowed
    enabled = fields.get("enabled") == "1"
    now = runtime_of(request).clock.now()

    def change(session: Any) -> None:
        campaigns.set_enabled(session, user.org_id, bot_id, enabled, now)

    return await _change(request, user, bot_id, change, "campaign.enabled")


@campaign_router.get("/bots/{bot_id}/campaign/preview")
def preview(
    request: Request,
    allowed: Viewer,
    bot_id: Id,
    time_zone: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The timeline of a contact quiet since now (a fragment, loaded by htmx beside the
    editor): each step's time, UTC and local, and its blocks — the engine's own schedule."""
    user, _ = allowed
    runtime = runtime_of(request)
    now = runtime.clock.now()
    language = language_of(request)
    error = None
    steps: list[Any] = []
    warnings: dict[int, str] = {}
    with runtime.sessions() as session:
        get_bot(session, user.org_id, bot_id)
        try:
            found = preview_campaign(
                session,
                user.org_id,
                bot_id,
                now,
                time_zone=time_zone.strip() or None,
                language=language,
            )
            steps, warnings = found.steps, found.warnings
        except NotFound:
            pass
        except InvalidInput:
            error = text(language, "err_time_zone", zone=time_zone)
    context = {"steps": steps, "warnings": warnings, "now": now, "error": error}
    return render(request, "campaign_preview.html", context, user=user)
