"""Who gets through: invited admins only; every button press verified and answered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject

from reengage.domain import button as btn
from reengage.entrypoints.manager_bot.actions import SINGLE_USE
from reengage.entrypoints.manager_bot.context import CallbackReply, Manager, Signed
from reengage.entrypoints.manager_bot.texts import DEFAULT, t
from reengage.services.manager_access import use_button

log = structlog.get_logger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def _is_invite(message: Message) -> bool:
    parts = (message.text or "").split(maxsplit=1)
    return len(parts) == 2 and parts[0].split("@")[0] == "/start"


class MessageAccess(BaseMiddleware):
    """Messages from anyone but an admin get a polite refusal, except `/start <code>`."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Message)
        if event.from_user is None:
            return None
        admin = await self.manager.admin(event.from_user.id)
        if admin is None and not _is_invite(event):
            log.info("manager.message.refused", telegram_user_id=event.from_user.id)
            await event.answer(t(DEFAULT, "refused"))
            return None
        data["admin"] = admin
        return await handler(event, data)


class CallbackAccess(BaseMiddleware):
    """A press is acted on only if its button was signed for this admin less than 15 minutes
    ago; otherwise nothing changes, the admin sees an alert and the attempt is logged. Every
    query is answered once."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, CallbackQuery)
        user_id = event.from_user.id
        admin = await self.manager.admin(user_id)
        if admin is None:
            log.warning("manager.callback.refused", reason="not_admin", telegram_user_id=user_id)
            await event.answer(t(DEFAULT, "refused"), show_alert=True)
            return None
        verified = self.manager.verify(event.data or "", user_id)
        if not isinstance(verified, btn.Refused) and not await self._spend(event, verified):
            verified = btn.Refused("already_used")
        if isinstance(verified, btn.Refused):
            log.warning(
                "manager.callback.refused", reason=verified.reason, telegram_user_id=user_id
            )
            await event.answer(t(admin.language, "expired"), show_alert=True)
            return None
        reply = CallbackReply()
        data.update(admin=admin, signed=verified, reply=reply)
        try:
            return await handler(event, data)
        finally:
            await event.answer(reply.text, show_alert=reply.alert)

    async def _spend(self, event: CallbackQuery, signed: Signed) -> bool:
        """A single-use button works once; the others (screens, questions) as often as
        pressed within their 15 minutes."""
        if (signed.prefix, signed.button.action) not in SINGLE_USE:
            return True
        now = self.manager.runtime.clock.now()
        data = event.data or ""
        return await self.manager.db(lambda s: use_button(s, data, now, btn.TTL))
