"""Timeouts menu: each bot's default inactivity timeout, final action and switch."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.orm import Session

from reengage.domain import policy as pol
from reengage.domain.campaign_draft import DraftError
from reengage.domain.duration import format_duration, parse_duration
from reengage.entrypoints.manager_bot.actions import TIMEOUTS, Tmo
from reengage.entrypoints.manager_bot.campaign_screens import bots_screen
from reengage.entrypoints.manager_bot.context import (
    INPUT_ERRORS,
    Admin,
    CallbackReply,
    Keys,
    Manager,
    On,
    Screen,
    Signed,
    error_text,
    show,
)
from reengage.entrypoints.manager_bot.texts import t
from reengage.services.bot_timeout import update_bot_layer
from reengage.services.tenancy import get_bot, list_bots
from reengage.silence.timeout import layers_for

ACTIONS = (pol.Action.CLOSE, pol.Action.HANDOFF, pol.Action.NONE)


class TimeoutInput(StatesGroup):
    value = State()


def timeouts_screen(keys: Keys, bot_id: int, bot_name: str, policy: pol.Policy) -> Screen:
    lang = keys.admin.language

    def source(name: str) -> str:
        return "" if policy.sources.get(name) is pol.Level.BOT else " " + t(lang, "inherited")

    text = t(
        lang,
        "timeouts",
        bot=bot_name,
        enabled=t(lang, "yes" if policy.enabled else "no") + source("enabled"),
        timeout=format_duration(policy.timeout) + source("timeout"),
        action=t(lang, f"action_{policy.action.value}") + source("action"),
    )
    toggle = "btn_disable" if policy.enabled else "btn_enable"
    keys.row(
        keys.button(t(lang, toggle), TIMEOUTS, Tmo.TOGGLE, bot_id),
        keys.button(t(lang, "btn_timeout"), TIMEOUTS, Tmo.ASK_TIMEOUT, bot_id),
    )
    keys.row(
        *(
            keys.button(
                t(lang, "btn_action", v=t(lang, f"action_{action.value}")),
                TIMEOUTS,
                Tmo.SET_ACTION,
                bot_id,
                index,
            )
            for index, action in enumerate(ACTIONS)
        )
    )
    keys.row(keys.button(t(lang, "btn_back"), TIMEOUTS, Tmo.BOTS))
    return text, keys.markup()


async def _policy(manager: Manager, admin: Admin, bot_id: int) -> tuple[str, pol.Policy]:
    """The bot's name and the policy its conversations get outside flows (bot level, then
    organization, then defaults)."""

    def load(session: Session) -> tuple[str, pol.Policy]:
        bot = get_bot(session, admin.org_id, bot_id)
        layers = layers_for(session, admin.org_id, bot_id, None, None)
        return bot.name, pol.resolve(layers, False, admin.language)

    return await manager.db(load)


async def render(manager: Manager, admin: Admin, bot_id: int) -> Screen:
    name, policy = await _policy(manager, admin, bot_id)
    return timeouts_screen(manager.keys(admin), bot_id, name, policy)


async def _update(manager: Manager, admin: Admin, bot_id: int, changes: dict[str, Any]) -> None:
    now = manager.runtime.clock.now()
    await manager.db(lambda s: update_bot_layer(s, admin.org_id, bot_id, changes, now))


class BadTimeout(Exception):
    """A typed timeout that cannot be used; the message is in the admin's language."""


def parse_timeout(text: str, language: str) -> str:
    """The timeout as stored (1 minute to 30 days, as the policy API accepts)."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise BadTimeout(DraftError("duration", text.strip()).message(language)) from exc
    if not pol.MIN_DURATION <= value <= pol.MAX_DURATION:
        raise BadTimeout(t(language, "timeout_range", v=text.strip()))
    return format_duration(value)


def timeouts_router() -> Router:
    router = Router(name="timeouts")

    @router.callback_query(On(TIMEOUTS, *Tmo))
    async def press(
        query: CallbackQuery,
        manager: Manager,
        admin: Admin,
        state: FSMContext,
        reply: CallbackReply,
        signed: Signed,
    ) -> None:
        action, bot_id, lang = Tmo(signed.button.action), signed.button.obj, admin.language
        await state.clear()
        try:
            if action is Tmo.BOTS:
                bots = await manager.db(
                    lambda s: [(b.id, b.name) for b in list_bots(s, admin.org_id)]
                )
                await show(query, bots_screen(manager.keys(admin), bots, TIMEOUTS, Tmo.BOT))
                return
            if action is Tmo.ASK_TIMEOUT:
                await state.set_state(TimeoutInput.value)
                await state.set_data({"bot": bot_id})
                keys = manager.keys(admin)
                keys.row(keys.button(t(lang, "btn_cancel"), TIMEOUTS, Tmo.BOT, bot_id))
                await show(query, (t(lang, "ask_timeout"), keys.markup()))
                return
            if action is Tmo.SET_ACTION:
                chosen = ACTIONS[signed.button.arg % len(ACTIONS)]
                await _update(manager, admin, bot_id, {"action": chosen.value})
            elif action is Tmo.TOGGLE:
                _, policy = await _policy(manager, admin, bot_id)
                await _update(manager, admin, bot_id, {"enabled": not policy.enabled})
            await show(query, await render(manager, admin, bot_id))
        except INPUT_ERRORS as exc:
            reply.text, reply.alert = error_text(exc, lang), True

    @router.message(TimeoutInput.value, F.text)
    async def typed(message: Message, manager: Manager, admin: Admin, state: FSMContext) -> None:
        bot_id = (await state.get_data())["bot"]
        try:
            value = parse_timeout(message.text or "", admin.language)
            await _update(manager, admin, bot_id, {"timeout": value})
        except BadTimeout as exc:
            await message.answer(str(exc))
            return
        except INPUT_ERRORS as exc:
            await message.answer(error_text(exc, admin.language))
            return
        await state.clear()
        await show(message, await render(manager, admin, bot_id))

    return router
