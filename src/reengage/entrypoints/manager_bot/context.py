"""What every handler needs: the runtime, the admin, signed keyboards, and screens."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.orm import Session

from reengage.domain import button as btn
from reengage.domain.campaign_draft import DraftError
from reengage.domain.schedule import ScheduleError
from reengage.entrypoints.manager_bot.texts import t
from reengage.runtime import Runtime
from reengage.services.errors import ServiceError
from reengage.services.manager_access import admin_of

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Admin:
    telegram_id: int
    org_id: int
    language: str


@dataclass(frozen=True, slots=True)
class Signed:
    """A verified button press."""

    prefix: str
    button: btn.Button


@dataclass
class CallbackReply:
    """How the callback query will be answered (always exactly once, after the handler)."""

    text: str | None = None
    alert: bool = False


class Manager:
    """The runtime and the button key, shared by every handler of one dispatcher."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Buttons are signed with the newest secret key and verified with every one given.
        self.verifying = [
            hashlib.sha256(b"reengage-manager-buttons:" + secret.encode()).digest()
            for secret in runtime.settings.secret_keys()
        ]
        self.key = self.verifying[0]

    async def db(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction, off the event loop."""

        def run() -> T:
            with self.runtime.sessions.begin() as session:
                return work(session)

        return await asyncio.to_thread(run)

    async def admin(self, telegram_id: int) -> Admin | None:
        def load(session: Session) -> Admin | None:
            row = admin_of(session, telegram_id)
            return None if row is None else Admin(row.telegram_user_id, row.org_id, row.language)

        return await self.db(load)

    def verify(self, data: str, telegram_id: int) -> Signed | btn.Refused:
        verified = btn.verify(self.verifying, data, telegram_id, self.runtime.clock.now())
        return verified if isinstance(verified, btn.Refused) else Signed(*verified)

    def keys(self, admin: Admin) -> Keys:
        return Keys(self, admin)


@dataclass
class Keys:
    """Builds one admin's inline keyboards; every button is signed for 15 minutes."""

    manager: Manager
    admin: Admin
    rows: list[list[InlineKeyboardButton]] = field(default_factory=list)

    def data(self, prefix: str, action: int, obj: int = 0, arg: int = 0, extra: int = 0) -> str:
        expires = self.manager.runtime.clock.now() + btn.TTL
        button = btn.Button(int(action), obj, arg, extra)
        return btn.sign(self.manager.key, prefix, self.admin.telegram_id, button, expires)

    def button(
        self, label: str, prefix: str, action: int, obj: int = 0, arg: int = 0, extra: int = 0
    ) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text=label, callback_data=self.data(prefix, action, obj, arg, extra)
        )

    def row(self, *buttons: InlineKeyboardButton) -> Keys:
        self.rows.append(list(buttons))
        return self

    def markup(self) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(inline_keyboard=self.rows)


class On(Filter):
    """A verified press of one of these actions under this prefix."""

    def __init__(self, prefix: str, *actions: IntEnum) -> None:
        self.prefix, self.actions = prefix, {int(a) for a in actions}

    async def __call__(self, query: CallbackQuery, signed: Signed) -> bool:
        return signed.prefix == self.prefix and signed.button.action in self.actions


Screen = tuple[str, InlineKeyboardMarkup]


async def show(target: CallbackQuery | Message, screen: Screen) -> None:
    """Edit the pressed message into `screen`, or send it as a new message."""
    text, markup = screen
    if isinstance(target, CallbackQuery):
        if isinstance(target.message, Message):
            with contextlib.suppress(TelegramBadRequest):  # "message is not modified"
                await target.message.edit_text(text, reply_markup=markup)
            return
        if target.bot is not None:
            await target.bot.send_message(target.from_user.id, text, reply_markup=markup)
        return
    await target.answer(text, reply_markup=markup)


def error_text(exc: Exception, language: str) -> str:
    """An input error in the admin's language."""
    if isinstance(exc, ScheduleError | DraftError):
        return exc.message(language)
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, ScheduleError | DraftError):
            return cause.message(language)
        cause = cause.__cause__
    if isinstance(exc, ServiceError):
        return t(language, "invalid", v=exc.text(language))
    return t(language, "invalid", v=str(exc))


INPUT_ERRORS = (ScheduleError, DraftError, ServiceError)


def lines(items: Sequence[str]) -> str:
    return "\n".join(items)
