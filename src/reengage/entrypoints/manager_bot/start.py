"""`/start`: redeem an invite, show the main menu, switch the admin's language."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Organization
from reengage.entrypoints.manager_bot.actions import MENU, RECOVERY, TIMEOUTS, Menu, Rec, Tmo
from reengage.entrypoints.manager_bot.context import Admin, Manager, On, Screen, Signed, show
from reengage.entrypoints.manager_bot.texts import DEFAULT, t
from reengage.services.errors import InvalidInput
from reengage.services.manager_access import LANGUAGES, redeem_invite, set_language


def main_menu(manager: Manager, admin: Admin) -> Screen:
    lang = admin.language
    keys = manager.keys(admin)
    keys.row(keys.button(t(lang, "btn_recovery"), RECOVERY, Rec.BOTS))
    keys.row(keys.button(t(lang, "btn_timeouts"), TIMEOUTS, Tmo.BOTS))
    other = 1 if lang != "en" else 0
    keys.row(keys.button(t(lang, "btn_language"), MENU, Menu.LANGUAGE, arg=other))
    return t(lang, "menu"), keys.markup()


def start_router() -> Router:
    router = Router(name="start")

    @router.message(CommandStart())
    async def start(
        message: Message,
        command: CommandObject,
        manager: Manager,
        admin: Admin | None,
        state: FSMContext,
    ) -> None:
        await state.clear()
        if command.args:
            assert message.from_user is not None
            user_id = message.from_user.id
            code = command.args.strip()

            def redeem(session: Session) -> tuple[Admin, str]:
                row = redeem_invite(session, code, user_id, DEFAULT, manager.runtime.clock.now())
                org = session.get_one(Organization, row.org_id)
                return Admin(row.telegram_user_id, row.org_id, row.language), org.name

            try:
                bound, org_name = await manager.db(redeem)
            except InvalidInput:
                await message.answer(t(admin.language if admin else DEFAULT, "bad_invite"))
                return
            admin = bound
            await message.answer(t(admin.language, "welcome", org=org_name))
        if admin is not None:
            await show(message, main_menu(manager, admin))

    @router.callback_query(On(MENU, Menu.MAIN))
    async def menu(query: CallbackQuery, manager: Manager, admin: Admin, state: FSMContext) -> None:
        await state.clear()
        await show(query, main_menu(manager, admin))

    @router.callback_query(On(MENU, Menu.LANGUAGE))
    async def language(
        query: CallbackQuery, manager: Manager, admin: Admin, signed: Signed
    ) -> None:
        chosen = LANGUAGES[signed.button.arg % len(LANGUAGES)]
        await manager.db(lambda s: set_language(s, admin.telegram_id, chosen))
        await show(query, main_menu(manager, Admin(admin.telegram_id, admin.org_id, chosen)))

    return router
