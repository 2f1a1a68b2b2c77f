"""A fake Telegram Bot API (https://core.telegram.org/bots/api) speaking the real wire format.

`POST|GET /bot{token}/{method}` takes multipart/form-data (aiogram, with files),
x-www-form-urlencoded (aiogram, without files), JSON or a query string, and answers
`{"ok": true, "result": ...}` or `{"ok": false, "error_code": N, "description": ...,
"parameters": {"retry_after": N}}` with HTTP status N. Files are served at
`GET /file/bot{token}/{file_path}`. Uploads become file_ids bound to the bot (the numeric part
of the token), as on Telegram. Any well-formed token (`<digits>:<letters>`) is accepted.
Every call is recorded; failures, blocks and rate limits are scriptable from any thread.
Inbound `Update` objects come from the builders of `telegram_updates` (also static methods
here: `FakeTelegram.text_update(...)`, ...).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reengage.testing import telegram_updates as updates
from reengage.testing.telegram_api import (
    BLOCKED,
    TOKEN,
    BotApi,
    StoredFile,
    TelegramError,
    TelegramMessage,
    bot_id_of,
    chat_key,
)

__all__ = [
    "FakeTelegram",
    "FloodControl",
    "StoredFile",
    "TelegramCall",
    "TelegramError",
    "TelegramMessage",
]

_JSON_FIELDS = {
    "reply_markup": "reply keyboard markup",
    "entities": "entities",
    "caption_entities": "caption entities",
    "reply_parameters": "reply parameters",
    "link_preview_options": "link preview options",
    "allowed_updates": "allowed updates",
}
_INT_FIELDS = {
    "chat_id",
    "message_id",
    "duration",
    "width",
    "height",
    "max_connections",
    "message_thread_id",
    "reply_to_message_id",
    "cache_time",
}
_BOOL_FIELDS = {
    "allow_paid_broadcast",
    "disable_notification",
    "protect_content",
    "show_alert",
    "drop_pending_updates",
    "has_spoiler",
    "supports_streaming",
    "disable_web_page_preview",
    "allow_sending_without_reply",
    "show_caption_above_media",
}
_INT = re.compile(r"-?\d+")


@dataclass
class TelegramCall:
    method: str  # as in the URL, e.g. "sendMessage"
    token: str
    params: dict[str, Any]  # decoded: ids and flags typed, reply_markup & other JSON parsed
    files: dict[str, bytes]  # by field name ("photo"), `attach://` references resolved
    at: datetime
    http_method: str = "POST"
    content_type: str = ""


# Messages a second one bot may send with `allow_paid_broadcast`.
PAID_PER_BOT = 1000


@dataclass
class FloodControl:
    """Telegram's flood control, enforced in real time at the moment each request arrives:
    at most `per_bot` messages in any second for one bot, and one message per `chat_gap`
    seconds in one chat. A message past either gets 429 with `retry_after`."""

    per_bot: int = 30
    chat_gap: float = 1.0
    retry_after: int = 1
    refused: list[TelegramCall] = field(default_factory=list)
    _chats: dict[tuple[str, int | str], float] = field(default_factory=dict)
    _bots: dict[str, deque[float]] = field(default_factory=dict)

    def check(
        self, token: str, target: int | str, at: float, paid: bool = False
    ) -> TelegramError | None:
        """`paid`: the request allows a paid broadcast (up to `PAID_PER_BOT` a second)."""
        recent = self._bots.setdefault(token, deque())
        while recent and recent[0] <= at - 1.0:
            recent.popleft()
        last = self._chats.get((token, target))
        too_soon = last is not None and at - last < self.chat_gap
        if too_soon or len(recent) >= (PAID_PER_BOT if paid else self.per_bot):
            description = f"Too Many Requests: retry after {self.retry_after}"
            return TelegramError(429, description, self.retry_after)
        recent.append(at)
        self._chats[(token, target)] = at
        return None


@dataclass
class _Failure:
    method: str
    error: TelegramError
    chat_id: int | str | None
    times: int


def decode_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Form values as the Bot API reads them: JSON fields parsed, ids and flags typed."""
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and key in _JSON_FIELDS:
            try:
                value = json.loads(value)
            except ValueError as exc:
                msg = f"Bad Request: can't parse {_JSON_FIELDS[key]} JSON object"
                raise TelegramError(400, msg) from exc
        elif isinstance(value, str) and key in _INT_FIELDS and _INT.fullmatch(value):
            value = int(value)
        elif isinstance(value, str) and key in _BOOL_FIELDS and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        params[key] = value
    return params


class FakeTelegram:
    """The Bot API fake; serve `.app` with `fakes.server.serve`."""

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._api = BotApi(now)
        self._calls: list[TelegramCall] = []
        self._failures: list[_Failure] = []
        self._blocked: set[int | str] = set()
        self._revoked: set[str] = set()
        self.flood: FloodControl | None = None
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"]),
                Route("/file/bot{token}/{file_path:path}", self._download, methods=["GET"]),
            ]
        )

    text_update = staticmethod(updates.text_update)
    photo_update = staticmethod(updates.photo_update)
    callback_update = staticmethod(updates.callback_update)
    my_chat_member_update = staticmethod(updates.my_chat_member_update)

    # ---- recording (thread-safe) ----

    @property
    def calls(self) -> list[TelegramCall]:
        """Every request, in order (a snapshot)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[TelegramCall]:
        """The calls of one method (case-insensitive, like Telegram)."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def sent_messages(self, chat_id: int | str | None = None) -> list[TelegramMessage]:
        """Messages the bots sent, in order (copies; deleted ones are flagged `deleted`)."""
        key = None if chat_id is None else chat_key(chat_id)
        with self._lock:
            return [copy.deepcopy(m) for m in self._api.messages if key in (None, m.chat_id)]

    def message_count(self) -> int:
        """How many messages the bots sent (cheap: no copies)."""
        with self._lock:
            return len(self._api.messages)

    def file(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._api.files.get(file_id)

    def add_file(
        self, token: str, content: bytes, *, kind: str = "photo", file_name: str | None = None
    ) -> str:
        """Store a file as if a user had sent it to this bot (for `photo_update`, getFile);
        `kind` is photo, video, audio, document or animation. Returns the file_id."""
        with self._lock:
            return self._api.store_file(bot_id_of(token), kind, content, file_name, {}).file_id

    def post_update(self, token: str, update: dict[str, Any], *, reach: str) -> int:
        """Deliver `update` to the bot's webhook as Telegram does: a JSON POST carrying the
        registered secret in `X-Telegram-Bot-Api-Secret-Token`. The webhook is HTTPS; `reach`
        is the plain-HTTP address its origin stands for here (as behind a TLS-terminating
        proxy). Returns the HTTP status; 404 raises when no webhook is set."""
        with self._lock:
            webhook = self._api.webhook(bot_id_of(token))
        if webhook is None:
            raise TelegramError(404, "no webhook is set for this bot")
        url = httpx.URL(str(webhook["url"]))
        local = httpx.URL(reach).copy_with(path=url.path, query=url.query or None)
        headers = {}
        if webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(webhook["secret_token"])
        return httpx.post(local, json=update, headers=headers, timeout=30).status_code

    def reset(self) -> None:
        """Forget calls, messages, files, webhooks, scripted failures, blocks, revocations."""
        with self._lock:
            self._calls.clear()
            self._api.clear()
            self._failures.clear()
            self._blocked.clear()
            self._revoked.clear()
            self.flood = None

    # ---- scripting (thread-safe) ----

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str,
        retry_after: int | None = None,
        chat_id: int | str | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` ("*": any), to `chat_id` if given, fail so."""
        key = None if chat_id is None else chat_key(chat_id)
        error = TelegramError(error_code, description, retry_after)
        with self._lock:
            self._failures.append(_Failure(method.lower(), error, key, times))

    def rate_limit_next(
        self, method: str, retry_after: int, *, chat_id: int | str | None = None, times: int = 1
    ) -> None:
        """429 "Too Many Requests: retry after N" with `parameters.retry_after` N."""
        description = f"Too Many Requests: retry after {retry_after}"
        self.fail_next(
            method,
            error_code=429,
            description=description,
            retry_after=retry_after,
            chat_id=chat_id,
            times=times,
        )

    def block(self, chat_id: int | str) -> None:
        """send*/edit*/copy*/forward* (sendChatAction too) to `chat_id` answer 403
        "Forbidden: bot was blocked by the user" until `unblock`."""
        with self._lock:
            self._blocked.add(chat_key(chat_id))

    def unblock(self, chat_id: int | str) -> None:
        with self._lock:
            self._blocked.discard(chat_key(chat_id))

    def enforce_flood_control(self, per_bot: int = 30, chat_gap: float = 1.0) -> FloodControl:
        """From now on, refuse with 429 the messages past Telegram's limits (in real time,
        measured when each request arrives); the refused calls are listed on the result."""
        with self._lock:
            self.flood = FloodControl(per_bot, chat_gap)
            return self.flood

    def revoke_token(self, token: str) -> None:
        """Every call with `token` answers 401 "Unauthorized", as after /revoke."""
        with self._lock:
            self._revoked.add(token)

    # ---- HTTP ----

    async def _endpoint(self, request: Request) -> Response:
        token, method = request.path_params["token"], request.path_params["method"]
        raw: dict[str, Any] = dict(request.query_params)
        files: dict[str, bytes] = {}
        names: dict[str, str] = {}
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and content_type.startswith("application/json"):
            body = await request.body()
            try:
                loaded = json.loads(body) if body.strip() else {}
            except ValueError:
                loaded = None
            if not isinstance(loaded, dict):
                error = TelegramError(400, "Bad Request: can't parse JSON object")
                return JSONResponse(error.body(), status_code=400)
            raw |= loaded
        elif request.method == "POST":
            async with request.form(max_part_size=16 * 1024 * 1024) as form:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        files[key], names[key] = await value.read(), value.filename or key
                    else:
                        raw[key] = value
        for key, value in list(raw.items()):  # aiogram sends photo="attach://<part name>"
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
                files[key], names[key] = files.pop(value[9:]), names.pop(value[9:])
        with self._lock:
            at = datetime.fromtimestamp(self._now(), UTC)
            call = TelegramCall(method, token, raw, files, at, request.method, content_type)
            self._calls.append(call)
            try:
                call.params = decode_params(raw)
                self._check(token, method.lower(), call.params)
                uploads = {key: (names[key], content) for key, content in files.items()}
                result = self._api.call(token, method, call.params, uploads)
            except TelegramError as exc:
                return JSONResponse(exc.body(), status_code=exc.error_code)
        if isinstance(result, tuple):  # (result, description)
            return JSONResponse({"ok": True, "result": result[0], "description": result[1]})
        return JSONResponse({"ok": True, "result": result})

    def _check(self, token: str, method: str, params: dict[str, Any]) -> None:
        """Token, scripted failures, blocked chats (under the lock)."""
        if not TOKEN.fullmatch(token) or token in self._revoked:
            raise TelegramError(401, "Unauthorized")
        target = chat_key(params["chat_id"]) if "chat_id" in params else None
        for failure in self._failures:
            if failure.method in ("*", method) and failure.chat_id in (None, target):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                raise failure.error
        blockable = method.startswith(("send", "edit", "copy", "forward"))
        if blockable and target is not None and target in self._blocked:
            raise TelegramError(403, BLOCKED)
        counted = blockable and method != "sendchataction"
        if self.flood is not None and counted and target is not None:
            paid = params.get("allow_paid_broadcast") is True
            refusal = self.flood.check(token, target, time.monotonic(), paid)
            if refusal is not None:
                self.flood.refused.append(self._calls[-1])
                raise refusal

    async def _download(self, request: Request) -> Response:
        token, path = request.path_params["token"], request.path_params["file_path"]
        with self._lock:
            found = next((f for f in self._api.files.values() if f.file_path == path), None)
            valid = bool(TOKEN.fullmatch(token)) and token not in self._revoked
            if found is None or not valid or found.bot_id != bot_id_of(token):
                return JSONResponse(TelegramError(404, "Not Found").body(), status_code=404)
            content, mime = found.content, found.mime_type or "image/jpeg"
        return Response(content, media_type=mime)
