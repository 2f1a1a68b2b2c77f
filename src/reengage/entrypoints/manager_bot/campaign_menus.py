"""Recovery menus: a bot's campaign, its settings, exclusions, steps, blocks, preview, publish."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.orm import Session

from reengage.domain import campaign_draft as cd
from reengage.entrypoints.manager_bot import campaign_screens as scr
from reengage.entrypoints.manager_bot.actions import RECOVERY, Rec
from reengage.entrypoints.manager_bot.context import (
    INPUT_ERRORS,
    Admin,
    CallbackReply,
    Manager,
    On,
    Screen,
    Signed,
    error_text,
    show,
)
from reengage.entrypoints.manager_bot.texts import t
from reengage.services import campaign_replay, campaigns
from reengage.services import campaign_results as cr
from reengage.services.campaign_edit import edit_draft
from reengage.services.campaign_preview import preview_campaign
from reengage.services.campaign_replay import ReplayRequest
from reengage.services.errors import NotFound
from reengage.services.media import store_media
from reengage.services.tenancy import list_bots

MAX_DOWNLOAD = 20 * 1024 * 1024  # the Bot API's getFile limit


class _Handled(Exception):
    """The admin was already told; nothing was stored."""


class RecoveryInput(StatesGroup):
    value = State()  # a typed setting, schedule, caption, ...
    block = State()  # a text or media block


Edit = Callable[[dict[str, Any], str, dict[str, Any]], cd.Draft]

# What a typed answer changes, and the screen shown after it.
INPUTS: dict[str, tuple[Edit, Rec]] = {
    "threshold": (lambda d, x, p: cd.set_threshold(d, x), Rec.CAMPAIGN),
    "zone": (lambda d, x, p: cd.set_time_zone(d, x), Rec.CAMPAIGN),
    "window": (lambda d, x, p: cd.set_window(d, x), Rec.CAMPAIGN),
    "exclusion": (lambda d, x, p: cd.add_exclusion(d, x), Rec.EXCLUSIONS),
    "step": (lambda d, x, p: cd.add_step(d, x), Rec.STEPS),
    "schedule": (lambda d, x, p: cd.set_schedule(d, p["step"], x), Rec.STEP),
    "caption": (lambda d, x, p: cd.set_caption(d, p["step"], p["block"], x), Rec.BLOCK),
    "delay": (lambda d, x, p: cd.set_delay(d, p["step"], p["block"], x), Rec.BLOCK),
    "auto_delete": (lambda d, x, p: cd.set_auto_delete(d, p["step"], p["block"], x), Rec.BLOCK),
}
# The buttons that ask for input: (what, prompt, state, screen to go back to).
ASKS: dict[Rec, tuple[str, str, State, Rec]] = {
    Rec.ASK_THRESHOLD: ("threshold", "ask_threshold", RecoveryInput.value, Rec.CAMPAIGN),
    Rec.ASK_ZONE: ("zone", "ask_zone", RecoveryInput.value, Rec.CAMPAIGN),
    Rec.ASK_WINDOW: ("window", "ask_window", RecoveryInput.value, Rec.CAMPAIGN),
    Rec.ASK_EXCLUSION: ("exclusion", "ask_exclusion", RecoveryInput.value, Rec.EXCLUSIONS),
    Rec.ASK_STEP: ("step", "ask_step", RecoveryInput.value, Rec.STEPS),
    Rec.ASK_SCHEDULE: ("schedule", "ask_schedule", RecoveryInput.value, Rec.STEP),
    Rec.ASK_BLOCK: ("block", "ask_block", RecoveryInput.block, Rec.STEP),
    Rec.ASK_CAPTION: ("caption", "ask_caption", RecoveryInput.value, Rec.BLOCK),
    Rec.ASK_DELAY: ("delay", "ask_delay", RecoveryInput.value, Rec.BLOCK),
    Rec.ASK_AUTO_DELETE: ("auto_delete", "ask_auto_delete", RecoveryInput.value, Rec.BLOCK),
}


@dataclass
class Press:
    query: CallbackQuery
    manager: Manager
    admin: Admin
    state: FSMContext
    reply: CallbackReply
    signed: Signed

    @property
    def bot(self) -> int:
        return self.signed.button.obj

    @property
    def step(self) -> int:
        return self.signed.button.arg

    @property
    def block(self) -> int:
        return self.signed.button.extra

    @property
    def lang(self) -> str:
        return self.admin.language


async def render(
    manager: Manager, admin: Admin, screen: Rec, bot: int, step: int = 0, block: int = 0
) -> Screen:
    """One of the campaign's screens, from the stored draft (a stale index falls back)."""
    view = await manager.db(lambda s: scr.load_view(s, admin.org_id, bot))
    keys = manager.keys(admin)
    steps = view.steps
    if screen is Rec.BLOCK and step < len(steps) and block < len(steps[step].get("blocks") or []):
        return scr.block_screen(keys, view, step, block)
    if screen in (Rec.STEP, Rec.BLOCK) and step < len(steps):
        return scr.step_screen(keys, view, step)
    if screen in (Rec.STEPS, Rec.STEP, Rec.BLOCK):
        return scr.steps_screen(keys, view)
    if screen is Rec.EXCLUSIONS:
        return scr.exclusions_screen(keys, view)
    return scr.campaign_screen(keys, view)


async def _change(p: Press, edit: Callable[[dict[str, Any]], cd.Draft]) -> None:
    now = p.manager.runtime.clock.now()
    await p.manager.db(lambda s: edit_draft(s, p.admin.org_id, p.bot, edit, now))


async def _bots(p: Press) -> Screen:
    bots = await p.manager.db(lambda s: [(b.id, b.name) for b in list_bots(s, p.admin.org_id)])
    return scr.bots_screen(p.manager.keys(p.admin), bots, RECOVERY, Rec.CAMPAIGN)


async def _toggle_enabled(p: Press) -> Screen:
    view = await p.manager.db(lambda s: scr.load_view(s, p.admin.org_id, p.bot))
    if view.version == 0:
        p.reply.text, p.reply.alert = t(p.lang, "publish_first"), True
    else:
        now = p.manager.runtime.clock.now()
        await p.manager.db(
            lambda s: campaigns.set_enabled(s, p.admin.org_id, p.bot, not view.enabled, now)
        )
    return await render(p.manager, p.admin, Rec.CAMPAIGN, p.bot)


async def _toggle_paid(p: Press) -> Screen:
    view = await p.manager.db(lambda s: scr.load_view(s, p.admin.org_id, p.bot))
    paid = bool(view.draft.get("ignore_paid", True))
    await _change(p, lambda d: cd.set_ignore_paid(d, not paid))
    return await render(p.manager, p.admin, Rec.CAMPAIGN, p.bot)


async def _remove_exclusion(p: Press) -> Screen:
    view = await p.manager.db(lambda s: scr.load_view(s, p.admin.org_id, p.bot))
    pressed = (p.step, p.block)
    gone = [u for i, u in enumerate(view.exclusions) if scr.exclusion_ref(u, i) == pressed]
    if gone:
        await _change(p, lambda d: cd.remove_exclusion(d, gone[0]))
    return await render(p.manager, p.admin, Rec.EXCLUSIONS, p.bot)


async def _move(p: Press, offset: int) -> Screen:
    await _change(p, lambda d: cd.move_step(d, p.step, offset))
    target = max(0, p.step + offset)
    return await render(p.manager, p.admin, Rec.STEP, p.bot, target)


async def _delete_step(p: Press) -> Screen:
    await _change(p, lambda d: cd.delete_step(d, p.step))
    return await render(p.manager, p.admin, Rec.STEPS, p.bot)


async def _delete_block(p: Press) -> Screen:
    await _change(p, lambda d: cd.delete_block(d, p.step, p.block))
    return await render(p.manager, p.admin, Rec.STEP, p.bot, p.step)


async def _preview(p: Press) -> Screen:
    now = p.manager.runtime.clock.now()

    def load(session: Session) -> Screen:
        view = scr.load_view(session, p.admin.org_id, p.bot)
        preview = preview_campaign(session, p.admin.org_id, p.bot, now, language=p.lang)
        return scr.preview_screen(p.manager.keys(p.admin), view, preview)

    return await p.manager.db(load)


async def _results(p: Press) -> Screen:
    def load(session: Session) -> Screen:
        view = scr.load_view(session, p.admin.org_id, p.bot)
        try:
            results = cr.campaign_results(session, p.admin.org_id, p.bot, cr.Filters())
        except NotFound:  # no campaign yet: nothing to count
            results = cr.Results(p.bot, False, [], {})
        return scr.results_screen(p.manager.keys(p.admin), view, results)

    return await p.manager.db(load)


async def _replay(p: Press) -> Screen:
    """The draft over the last 30 days (read-only; off the event loop, however long)."""
    now = p.manager.runtime.clock.now()
    sessions = p.manager.runtime.sessions
    result = await asyncio.to_thread(
        campaign_replay.run, sessions, p.admin.org_id, p.bot, ReplayRequest(30), now
    )
    view = await p.manager.db(lambda s: scr.load_view(s, p.admin.org_id, p.bot))
    return scr.replay_screen(p.manager.keys(p.admin), view, result)


async def _publish(p: Press) -> Screen:
    now = p.manager.runtime.clock.now()
    version = await p.manager.db(lambda s: campaigns.publish(s, p.admin.org_id, p.bot, now))
    p.reply.text = t(p.lang, "published", v=version)
    return await render(p.manager, p.admin, Rec.CAMPAIGN, p.bot)


async def _ask(p: Press) -> Screen:
    what, prompt, state, back = ASKS[Rec(p.signed.button.action)]
    await p.state.set_state(state)
    await p.state.set_data({"what": what, "bot": p.bot, "step": p.step, "block": p.block})
    keys = p.manager.keys(p.admin)
    keys.row(keys.button(t(p.lang, "btn_cancel"), RECOVERY, back, p.bot, p.step, p.block))
    return t(p.lang, prompt), keys.markup()


async def _screen(p: Press) -> Screen:
    action = Rec(p.signed.button.action)
    return await render(p.manager, p.admin, action, p.bot, p.step, p.block)


ACTIONS: dict[Rec, Callable[[Press], Awaitable[Screen]]] = {
    Rec.BOTS: _bots,
    Rec.TOGGLE_ENABLED: _toggle_enabled,
    Rec.TOGGLE_PAID: _toggle_paid,
    Rec.REMOVE_EXCLUSION: _remove_exclusion,
    Rec.MOVE_UP: lambda p: _move(p, -1),
    Rec.MOVE_DOWN: lambda p: _move(p, 1),
    Rec.DELETE_STEP: _delete_step,
    Rec.DELETE_BLOCK: _delete_block,
    Rec.PREVIEW: _preview,
    Rec.RESULTS: _results,
    Rec.REPLAY: _replay,
    Rec.PUBLISH: _publish,
    **dict.fromkeys(ASKS, _ask),
}


async def _media_of(message: Message) -> tuple[str, str, str, str, int | None] | None:
    """(kind, file_id, file name, MIME type, size) of the media in a message."""
    if message.photo:
        photo = message.photo[-1]
        return "photo", photo.file_id, "photo.jpg", "image/jpeg", photo.file_size
    for kind in ("animation", "video", "audio", "document"):  # an animation is also a document
        media = getattr(message, kind)
        if media is not None:
            name = media.file_name or kind
            mime = media.mime_type or "application/octet-stream"
            return kind, media.file_id, name, mime, media.file_size
    return None


async def _download(message: Message, file_id: str) -> bytes:
    assert message.bot is not None
    file = await message.bot.get_file(file_id)
    if file.file_path is None:
        raise TelegramBadRequest(method=None, message="no file_path")  # type: ignore[arg-type]
    data = await message.bot.download_file(file.file_path)
    assert data is not None
    return data.read()


def recovery_router() -> Router:
    router = Router(name="recovery")

    @router.callback_query(On(RECOVERY, *Rec))
    async def press(
        query: CallbackQuery,
        manager: Manager,
        admin: Admin,
        state: FSMContext,
        reply: CallbackReply,
        signed: Signed,
    ) -> None:
        p = Press(query, manager, admin, state, reply, signed)
        action = Rec(signed.button.action)
        if action not in ASKS:
            await state.clear()
        try:
            screen = await ACTIONS.get(action, _screen)(p)
        except INPUT_ERRORS as exc:
            reply.text, reply.alert = error_text(exc, admin.language), True
            return
        await show(query, screen)

    @router.message(RecoveryInput.value, F.text)
    async def typed(message: Message, manager: Manager, admin: Admin, state: FSMContext) -> None:
        pending = await state.get_data()
        edit, screen = INPUTS[pending["what"]]
        text = message.text or ""
        now = manager.runtime.clock.now()
        try:
            await manager.db(
                lambda s: edit_draft(
                    s, admin.org_id, pending["bot"], lambda d: edit(d, text, pending), now
                )
            )
        except INPUT_ERRORS as exc:
            await message.answer(error_text(exc, admin.language))
            return
        await state.clear()
        step, block = pending["step"], pending["block"]
        await show(message, await render(manager, admin, screen, pending["bot"], step, block))

    @router.message(RecoveryInput.block)
    async def block(message: Message, manager: Manager, admin: Admin, state: FSMContext) -> None:
        pending = await state.get_data()
        bot, step, lang = pending["bot"], pending["step"], admin.language
        now = manager.runtime.clock.now()
        media = await _media_of(message)
        try:
            if media is None and message.text:
                text = message.text
                await manager.db(
                    lambda s: edit_draft(
                        s, admin.org_id, bot, lambda d: cd.add_text_block(d, step, text), now
                    )
                )
            elif media is None:
                await message.answer(t(lang, "unsupported"))
                return
            else:
                await _add_media(message, manager, admin, bot, step, media)
        except INPUT_ERRORS as exc:
            await message.answer(error_text(exc, lang))
            return
        except _Handled:
            return
        await state.clear()
        await show(message, await render(manager, admin, Rec.STEP, bot, step))

    return router


async def _add_media(
    message: Message,
    manager: Manager,
    admin: Admin,
    bot: int,
    step: int,
    media: tuple[str, str, str, str, int | None],
) -> None:
    """Download the file (the manager bot's file_id means nothing to other bots), store it as
    a media asset and add the block, in one transaction."""
    kind, file_id, name, mime, size = media
    lang = admin.language
    if size is not None and size > MAX_DOWNLOAD:
        await message.answer(t(lang, "too_big"))
        raise _Handled
    try:
        content = await _download(message, file_id)
    except TelegramBadRequest as exc:
        await message.answer(t(lang, "download_failed", v=exc.message))
        raise _Handled from exc
    now, caption = manager.runtime.clock.now(), message.caption

    def save(session: Session) -> None:
        asset = store_media(
            session,
            manager.runtime.media,
            admin.org_id,
            filename=name,
            content_type=mime,
            stream=io.BytesIO(content),
            now=now,
        )
        edit_draft(
            session,
            admin.org_id,
            bot,
            lambda d: cd.add_media_block(d, step, kind, asset.id, caption),
            now,
        )

    await manager.db(save)
