"""The Telegram Bot API channel, through aiogram's `Bot` client.

Platform rules live here: flood control (429 `retry_after`, pacing of about 30 messages/s per
bot and 1/s per chat), "blocked by the user" (403), the 48-hour delete window, text and
caption limits. Only the API base URL differs between production and tests.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import BufferedInputFile, Message

from reengage.adapters.channels.aio import LoopThread, shared_loop
from reengage.adapters.pacing import Pacer, take_slot
from reengage.domain.activity import ChannelKind
from reengage.domain.outbound import (
    Blocked,
    Failed,
    MessageKind,
    OutboundMessage,
    SendContext,
    SendOutcome,
    Sent,
    Skipped,
    decide_delete,
    message_problems,
)
from reengage.ports import Clock


@dataclass(frozen=True, slots=True)
class TelegramLimits:
    # Telegram allows about 30 messages/s per bot and 1/s per chat. Sends are paced a little
    # under both, so a request that leaves a few milliseconds late (a busy machine) still
    # arrives within them: at most 30 in any second, never two in one chat within 1 s. (One
    # send per 1/28 s slot puts at most 29 in any window of a second, plus one for lateness.)
    per_bot: float = 28.0  # messages/s for one bot across all chats
    per_chat: float = 1 / 1.05  # messages/s in one chat (one every 1.05 s)
    defer_over: float = 0.25  # a longer pacing wait is handed back when the caller allows it


_SENDERS = {
    MessageKind.PHOTO: ("send_photo", "photo"),
    MessageKind.VIDEO: ("send_video", "video"),
    MessageKind.AUDIO: ("send_audio", "audio"),
    MessageKind.DOCUMENT: ("send_document", "document"),
    MessageKind.ANIMATION: ("send_animation", "animation"),
}


def _file_id(message: Message) -> str | None:
    if message.photo:
        return message.photo[-1].file_id
    for attr in ("video", "audio", "document", "animation"):
        media = getattr(message, attr)
        if media is not None:
            return str(media.file_id)
    return None


# One aiogram Bot (and HTTP connection pool) per token and API server, per process loop:
# opening and closing a session per message would cost a connection and a 250 ms close.
_bots: dict[tuple[int, str, str], Bot] = {}
_bots_lock = threading.Lock()


def _bot_for(loop: LoopThread, token: str, api: TelegramAPIServer) -> Bot:
    key = (id(loop), token, api.base)
    with _bots_lock:
        bot = _bots.get(key)
        if bot is None:
            bot = _bots[key] = Bot(token, session=AiohttpSession(api=api))
        return bot


async def _close_bots() -> None:
    with _bots_lock:
        bots = list(_bots.values())
        _bots.clear()
    for bot in bots:
        await bot.session.close()


def close_bots() -> None:
    """Close every cached Telegram session (at shutdown, and between tests)."""
    if _bots:
        shared_loop().run(_close_bots())


class TelegramChannel:
    def __init__(
        self,
        token: str,
        *,
        bot_key: str,
        clock: Clock,
        pacer: Pacer,
        api_base: str | None = None,
        limits: TelegramLimits = TelegramLimits(),  # noqa: B008
    ) -> None:
        self._token = token
        self._api = TelegramAPIServer.from_base(api_base) if api_base else PRODUCTION
        self._bot_key = bot_key
        self._clock = clock
        self._pacer = pacer
        self._limits = limits

    def _call(self, make: Callable[[Bot], Coroutine[Any, Any, Any]]) -> Any:
        loop = shared_loop()
        return loop.run(make(_bot_for(loop, self._token, self._api)))

    def _paced(
        self,
        chat_id: str,
        make: Callable[[Bot], Coroutine[Any, Any, Any]],
        context: SendContext | None = None,
    ) -> Any:
        """Call the API within the platform's pace. The slot is checked at the moment of the
        request; a wait too long to sleep through, and a 429's `retry_after`, come back as
        retryable outcomes for the caller to try again later. Refusals are outcome values."""
        limits = self._limits
        prefix = f"{{pace:tg:{self._bot_key}}}"
        chat = f"{prefix}:chat:{chat_id}"
        slot = take_slot(
            self._pacer,
            gaps=[(chat, limits.per_chat)],
            rates=[(f"{prefix}:bot", limits.per_bot)],
            held=context.slot_at if context is not None else None,
            defer_over=limits.defer_over if context is not None and context.may_defer else None,
            sleep=self._clock.sleep_real,
        )
        if slot is not None:
            return Failed("paced", True, slot.wait, "waiting for its send slot", slot.at)
        try:
            return self._call(make)
        except TelegramRetryAfter as exc:
            # Every worker holds off this chat for as long as Telegram asked.
            self._pacer.hold([chat], self._pacer.now() + exc.retry_after)
            return Failed("rate_limited", True, float(exc.retry_after), exc.message)
        except TelegramForbiddenError as exc:
            return Blocked(exc.message)
        except TelegramUnauthorizedError as exc:
            return Failed("unauthorized", False, detail=exc.message)
        except TelegramBadRequest as exc:
            return Failed("bad_request", False, detail=exc.message)
        except (TelegramServerError, TelegramNetworkError) as exc:
            # The request may have reached Telegram: never resend blindly.
            return Failed("ambiguous", False, detail=str(exc))
        except TelegramAPIError as exc:
            return Failed("api_error", False, detail=exc.message)

    def send(self, chat_id: str, message: OutboundMessage, context: SendContext) -> SendOutcome:
        problems = message_problems(message)
        if problems:
            return Failed("invalid_message", False, detail="; ".join(problems))
        if message.kind is MessageKind.TEMPLATE:
            return Skipped("unsupported")
        result = self._paced(chat_id, lambda bot: self._send(bot, chat_id, message), context)
        if isinstance(result, Message):
            return Sent(str(result.message_id), _file_id(result))
        assert isinstance(result, Sent | Skipped | Failed | Blocked)
        return result

    @staticmethod
    async def _send(bot: Bot, chat_id: str, message: OutboundMessage) -> Message:
        if message.kind is MessageKind.TEXT:
            return await bot.send_message(chat_id, message.text or "")
        method, field = _SENDERS[message.kind]
        media = message.media
        assert media is not None
        file: Any
        if media.file_id:
            file = media.file_id
        elif media.content is not None:
            file = BufferedInputFile(media.content, media.filename)
        else:
            file = media.url
        kwargs: dict[str, Any] = {field: file}
        if message.text:
            kwargs["caption"] = message.text
        result: Message = await getattr(bot, method)(chat_id, **kwargs)
        return result

    def delete(
        self, chat_id: str, message_id: str, sent_at: datetime, now: datetime
    ) -> SendOutcome:
        refusal = decide_delete(ChannelKind.TELEGRAM, sent_at, now)
        if refusal:
            return refusal
        result = self._paced(chat_id, lambda bot: bot.delete_message(chat_id, int(message_id)))
        if result is True:
            return Sent(message_id)
        if isinstance(result, Failed) and result.reason == "bad_request":
            # "message to delete not found", "message can't be deleted (for everyone)": the
            # platform's refusal, not a failure of ours.
            gone = "not found" in result.detail
            return Skipped("already_deleted" if gone else "delete_refused")
        assert isinstance(result, Sent | Skipped | Failed | Blocked)
        return result

    def chat_action(self, chat_id: str, action: str) -> SendOutcome:
        try:
            self._call(lambda bot: bot.send_chat_action(chat_id, action))
        except TelegramForbiddenError as exc:
            return Blocked(exc.message)
        except TelegramAPIError as exc:
            # A chat action is cosmetic: never worth a retry.
            return Skipped(f"chat_action_failed: {exc.message}")
        return Sent("")


class WebhookRefused(Exception):
    """Telegram answered `setWebhook` with an error (a bad token, a URL it will not call)."""


def set_webhook(token: str, url: str, secret: str, api_base: str | None = None) -> None:
    """Point Telegram at `url`; Telegram then sends `secret` in every update's header."""
    api = TelegramAPIServer.from_base(api_base) if api_base else PRODUCTION
    loop = shared_loop()
    try:
        loop.run(
            _bot_for(loop, token, api).set_webhook(
                url,
                secret_token=secret,
                allowed_updates=["message", "edited_message", "callback_query", "my_chat_member"],
            )
        )
    except TelegramAPIError as exc:
        raise WebhookRefused(exc.message) from exc


def answer_callback_query(token: str, callback_query_id: str, api_base: str | None = None) -> None:
    """Stop the button's spinner on the user's side (Telegram expects every callback answered)."""
    api = TelegramAPIServer.from_base(api_base) if api_base else PRODUCTION
    loop = shared_loop()
    # Too late (queries expire) or already answered: nothing left to do.
    with contextlib.suppress(TelegramAPIError):
        loop.run(_bot_for(loop, token, api).answer_callback_query(callback_query_id))
