"""The Telegram Bot API channel, over a small aiohttp client (`bot_api`).

Platform rules live here: flood control (429 `retry_after`, pacing just under 30 messages/s
per bot and 1/s per chat), "blocked by the user" (403), the 48-hour delete window, text and
caption limits. Every answer, and every failure to get one, becomes an outcome value: a 5xx
or an HTML gateway page is retried, a connection never made is retried, a request that left
without an answer is `ambiguous`. Only the API base URL differs between production and tests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reengage.adapters.channels.aio import LoopThread, shared_loop
from reengage.adapters.channels.bot_api import BotApi, NoAnswer, NotSent, Reply, Upload
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
    Superseded,
    decide_delete,
    message_problems,
)
from reengage.metrics import http_error_kind, pacing_hold, platform_error
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
    # Telegram's paid broadcast (`allow_paid_broadcast`): up to 1,000 messages/s per bot.
    paid_broadcast: bool = False


# Paced a little under 1,000/s, as the free limit is paced under 30.
PAID_BROADCAST = TelegramLimits(per_bot=950.0, paid_broadcast=True)


_SENDERS = {
    MessageKind.PHOTO: ("sendPhoto", "photo"),
    MessageKind.VIDEO: ("sendVideo", "video"),
    MessageKind.AUDIO: ("sendAudio", "audio"),
    MessageKind.DOCUMENT: ("sendDocument", "document"),
    MessageKind.ANIMATION: ("sendAnimation", "animation"),
}


def _file_id(result: dict[str, Any]) -> str | None:
    photo = result.get("photo")
    if isinstance(photo, list) and photo and isinstance(photo[-1], dict):
        return str(photo[-1].get("file_id"))
    for attr in ("video", "audio", "document", "animation"):
        media = result.get(attr)
        if isinstance(media, dict) and media.get("file_id"):
            return str(media["file_id"])
    return None


# One client (and HTTP connection pool) per API server and process loop: opening a session
# per message would cost a connection each time.
_clients: dict[tuple[int, str], BotApi] = {}
_clients_lock = threading.Lock()


def _client(loop: LoopThread, base: str | None) -> BotApi:
    key = (id(loop), base or "")
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = BotApi(base)
        return client


async def _close_all() -> None:
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        await client.close()


def close_bots() -> None:
    """Close every cached Telegram session (at shutdown, and between tests)."""
    if _clients:
        shared_loop().run(_close_all())


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
        timeout: float | None = None,
    ) -> None:
        self._token = token
        self._timeout = timeout
        self._base = api_base
        self._bot_key = bot_key
        self._clock = clock
        self._pacer = pacer
        self._limits = limits

    def _chat_key(self, chat_id: str) -> str:
        return f"{{pace:tg:{self._bot_key}}}:chat:{chat_id}"

    def _pace(self, chat_id: str, context: SendContext | None) -> Failed | None:
        """Be in a send slot at the moment of the request; a wait too long to sleep through
        comes back for the caller to retry at its slot."""
        limits = self._limits
        slot = take_slot(
            self._pacer,
            gaps=[(self._chat_key(chat_id), limits.per_chat)],
            rates=[(f"{{pace:tg:{self._bot_key}}}:bot", limits.per_bot)],
            held=context.slot_at if context is not None else None,
            defer_over=limits.defer_over if context is not None and context.may_defer else None,
            sleep=self._sleep_for_slot,
        )
        if slot is None:
            return None
        pacing_hold("telegram", self._bot_key, "handed_back")
        return Failed("paced", True, slot.wait, "waiting for its send slot", slot.at)

    def _sleep_for_slot(self, seconds: float) -> None:
        pacing_hold("telegram", self._bot_key, "slept")
        self._clock.sleep_real(seconds)

    def _call(
        self, method: str, params: dict[str, Any], upload: Upload | None = None
    ) -> Reply | Failed:
        loop = shared_loop()
        try:
            client = _client(loop, self._base)
            return loop.run(client.call(self._token, method, params, upload, self._timeout))
        except NotSent as exc:  # nothing reached Telegram: safe to send again
            platform_error("telegram", "timeout" if exc.timed_out else "network")
            return Failed("connect_failed", True, detail=str(exc))
        except NoAnswer as exc:  # it may have reached Telegram
            platform_error("telegram", "timeout" if exc.timed_out else "network")
            return Failed("ambiguous", False, detail=str(exc))

    def _refusal(self, reply: Reply, chat_id: str) -> SendOutcome:
        """Every answer that is not a success, as an outcome."""
        detail = reply.description or reply.body or f"HTTP {reply.status}"
        code = reply.error_code or reply.status
        if reply.status >= 500 or reply.is_bot_api:
            platform_error("telegram", http_error_kind(max(code, reply.status)))
        else:
            platform_error("telegram", "bad_response")
        if reply.status >= 500:
            # A gateway page (502/504) or an internal error: not a delivery; try again.
            return Failed("server_error", True, detail=f"HTTP {reply.status}: {detail[:200]}")
        if not reply.is_bot_api:
            # Not the Bot API speaking: a 2xx we cannot read may have been delivered.
            ambiguous = 200 <= reply.status < 300
            reason = "ambiguous" if ambiguous else "bad_response"
            return Failed(reason, False, detail=f"HTTP {reply.status}: {detail[:200]}")
        if code == 429:
            wait = float(reply.retry_after or 1)
            # Every worker holds off this chat for as long as Telegram asked.
            self._pacer.hold([self._chat_key(chat_id)], self._pacer.now() + wait)
            return Failed("rate_limited", True, wait, detail)
        if code == 403:
            return Blocked(detail)
        if code in (401, 404):
            return Failed("unauthorized", False, detail=detail)
        if code == 400:
            return Failed("bad_request", False, detail=detail)
        return Failed("api_error", False, detail=detail)

    def send(self, chat_id: str, message: OutboundMessage, context: SendContext) -> SendOutcome:
        problems = message_problems(message)
        if problems:
            return Failed("invalid_message", False, detail="; ".join(problems))
        if message.kind is MessageKind.TEMPLATE:
            return Skipped("unsupported")
        method, params, upload = _request(chat_id, message)
        if self._limits.paid_broadcast:
            params["allow_paid_broadcast"] = True
        paced = self._pace(chat_id, context)
        if paced is not None:
            return paced
        if context.on_request is not None and not context.on_request():
            return Superseded()
        reply = self._call(method, params, upload)
        if isinstance(reply, Failed):
            return reply
        if not reply.ok:
            return self._refusal(reply, chat_id)
        result = reply.result if isinstance(reply.result, dict) else {}
        if "message_id" not in result:
            return Failed("ambiguous", False, detail="accepted without a message id")
        return Sent(str(result["message_id"]), _file_id(result))

    def delete(
        self, chat_id: str, message_id: str, sent_at: datetime, now: datetime
    ) -> SendOutcome:
        refusal = decide_delete(ChannelKind.TELEGRAM, sent_at, now)
        if refusal:
            return refusal
        self._pace(chat_id, None)
        reply = self._call("deleteMessage", {"chat_id": chat_id, "message_id": int(message_id)})
        if isinstance(reply, Failed):
            return reply
        if reply.ok:
            return Sent(message_id)
        outcome = self._refusal(reply, chat_id)
        if isinstance(outcome, Failed) and outcome.reason == "bad_request":
            # "message to delete not found", "message can't be deleted (for everyone)": the
            # platform's refusal, not a failure of ours.
            gone = "not found" in outcome.detail
            return Skipped("already_deleted" if gone else "delete_refused")
        return outcome

    def chat_action(self, chat_id: str, action: str) -> SendOutcome:
        reply = self._call("sendChatAction", {"chat_id": chat_id, "action": action})
        if isinstance(reply, Reply) and reply.ok:
            return Sent("")
        if isinstance(reply, Reply) and (reply.error_code or reply.status) == 403:
            return Blocked(reply.description)
        # A chat action is cosmetic: never worth a retry.
        detail = reply.detail if isinstance(reply, Failed) else reply.description or reply.body
        return Skipped(f"chat_action_failed: {detail[:100]}")


def _request(chat_id: str, message: OutboundMessage) -> tuple[str, dict[str, Any], Upload | None]:
    """The Bot API method, its parameters and the file to upload, if any."""
    if message.kind is MessageKind.TEXT:
        return "sendMessage", {"chat_id": chat_id, "text": message.text or ""}, None
    method, field = _SENDERS[message.kind]
    media = message.media
    assert media is not None
    params: dict[str, Any] = {"chat_id": chat_id}
    if message.text:
        params["caption"] = message.text
    if media.file_id or (media.content is None and media.path is None):
        params[field] = media.file_id or media.url
        return method, params, None
    upload = Upload(field, media.filename, media.content, media.content_type, media.path)
    return method, params, upload


class WebhookRefused(Exception):
    """Telegram answered `setWebhook` with an error (a bad token, a URL it will not call)."""


def set_webhook(token: str, url: str, secret: str, api_base: str | None = None) -> None:
    """Point Telegram at `url`; Telegram then sends `secret` in every update's header."""
    params = {
        "url": url,
        "secret_token": secret,
        "allowed_updates": ["message", "edited_message", "callback_query", "my_chat_member"],
    }
    reply = _once(token, "setWebhook", params, api_base)
    if not (isinstance(reply, Reply) and reply.ok):
        detail = reply.description or reply.body if isinstance(reply, Reply) else reply
        raise WebhookRefused(str(detail)[:300])


def delete_webhook(token: str, api_base: str | None = None) -> str | None:
    """Tell Telegram to stop posting this bot's updates to us (its pending updates are
    dropped with it); None once Telegram confirmed, else why not (one line)."""
    reply = _once(token, "deleteWebhook", {"drop_pending_updates": True}, api_base)
    if isinstance(reply, Reply) and reply.ok:
        return None
    detail = (reply.description or f"HTTP {reply.status}") if isinstance(reply, Reply) else reply
    return str(detail).splitlines()[0][:300] if str(detail).strip() else "no answer"


NO_ANSWER = "no answer"


def check_token(token: str, api_base: str | None = None) -> str:
    """The bot's @username when Telegram accepts the token (`get_me`); ValueError saying why
    not (refused, or no answer)."""
    me = get_me(token, api_base)
    if isinstance(me, str) and me.startswith(NO_ANSWER):
        raise ValueError(f"Telegram did not answer: {me}")
    if isinstance(me, str):
        raise ValueError(f"Telegram refused the token: {me}")
    return f"@{me.get('username', '?')}"


def get_me(token: str, api_base: str | None = None) -> dict[str, Any] | str:
    """The bot's own `User` (its `username`, `first_name`...) when Telegram accepts the
    token, else why not (one line). The one getMe call: the doctor and the console use it."""
    reply = _once(token, "getMe", {}, api_base)
    if isinstance(reply, Reply) and reply.ok and isinstance(reply.result, dict):
        return reply.result
    if isinstance(reply, Reply):
        detail = reply.description or reply.body[:100] or f"HTTP {reply.status}"
    else:
        detail = f"{NO_ANSWER} ({reply})" if reply else NO_ANSWER
    return str(detail).splitlines()[0][:300] if str(detail).strip() else NO_ANSWER


def answer_callback_query(token: str, callback_query_id: str, api_base: str | None = None) -> None:
    """Stop the button's spinner on the user's side (Telegram expects every callback answered).
    Too late (queries expire) or already answered: nothing left to do."""
    _once(token, "answerCallbackQuery", {"callback_query_id": callback_query_id}, api_base)


def _once(token: str, method: str, params: dict[str, Any], api_base: str | None) -> Reply | str:
    """A call outside the send path: its answer, or why there was none."""
    loop = shared_loop()
    try:
        return loop.run(_client(loop, api_base).call(token, method, params))
    except (NotSent, NoAnswer) as exc:
        return str(exc)
