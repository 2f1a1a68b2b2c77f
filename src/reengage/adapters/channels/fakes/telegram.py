"""A fake Telegram Bot API (https://core.telegram.org/bots/api) speaking the real wire format.

`POST|GET /bot{token}/{method}` with multipart/form-data, x-www-form-urlencoded, JSON or a query
string; answers `{"ok": true, "result": ...}` or `{"ok": false, "error_code": N, "description":
..., "parameters": {...}}` with HTTP status N. Files: `GET /file/bot{token}/{file_path}`.
Uploads become file_ids bound to the bot (the numeric part of the token), as on Telegram.
Every call is recorded; failures are scriptable from any thread.
"""

from __future__ import annotations

import copy
import json
import mimetypes
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reengage.adapters.channels.fakes import telegram_updates as _updates

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses bigger files
DELETE_WINDOW = 48 * 3600  # a bot deletes its own messages for 48 hours
WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"
BLOCKED = "Forbidden: bot was blocked by the user"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
CHAT_ACTIONS = frozenset(
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document "
    "choose_sticker find_location record_video_note upload_video_note".split()
)
_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")
_INT = re.compile(r"-?\d+")
_JSON_FIELDS = {"reply_markup": "reply keyboard markup", "entities": "entities",
                "caption_entities": "caption entities", "link_preview_options":
                "link preview options", "reply_parameters": "reply parameters",
                "allowed_updates": "allowed updates"}  # fmt: skip
_INT_FIELDS = {"chat_id", "message_id", "duration", "width", "height", "max_connections",
               "message_thread_id", "reply_to_message_id", "cache_time"}  # fmt: skip
_BOOL_FIELDS = {"disable_notification", "protect_content", "show_alert", "drop_pending_updates",
                "has_spoiler", "supports_streaming", "disable_web_page_preview",
                "allow_sending_without_reply", "show_caption_above_media"}  # fmt: skip
_MEDIA = {"sendphoto": "photo", "sendvideo": "video", "sendaudio": "audio",
          "senddocument": "document", "sendanimation": "animation"}  # fmt: skip
_FILE_DIRS = {"photo": ("photos", ".jpg"), "video": ("videos", ".mp4"),
              "audio": ("music", ".mp3"), "document": ("documents", ""),
              "animation": ("animations", ".mp4")}  # fmt: skip
_ID_PREFIX = {"photo": "AgAC", "video": "BAAC", "audio": "CQAC", "document": "BQAC",
              "animation": "CgAC"}  # fmt: skip


class TelegramError(Exception):
    """A refusal, answered exactly as the Bot API does."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return JSONResponse(body, status_code=self.error_code)


@dataclass
class TelegramCall:
    method: str  # as in the URL, e.g. "sendMessage"
    token: str
    params: dict[str, Any]  # decoded: ints, bools, reply_markup and other JSON fields parsed
    files: dict[str, bytes]  # by field name ("photo"), `attach://` references resolved
    at: datetime
    http_method: str = "POST"
    content_type: str = ""


@dataclass
class TelegramMessage:
    bot_id: int
    chat_id: int
    message_id: int
    kind: str  # "text", "photo", "video", "audio", "document", "animation"
    payload: dict[str, Any]  # the Message object, as last returned
    date: datetime
    text: str | None = None
    caption: str | None = None
    reply_markup: dict[str, Any] | None = None
    file_id: str | None = None
    deleted: bool = False
    edited: bool = False


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    bot_id: int
    kind: str
    content: bytes
    file_path: str
    file_name: str | None
    mime_type: str | None


@dataclass
class _Failure:
    method: str
    error: TelegramError
    chat_id: int | str | None
    times: int


def _chat_key(value: Any) -> int | str:
    text = str(value)
    return int(text) if _INT.fullmatch(text) else text


def _decode(raw: dict[str, Any]) -> dict[str, Any]:
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


def _image_size(data: bytes) -> tuple[int, int]:
    """PNG, GIF or JPEG dimensions, scaled to fit 1280 px like Telegram's photo recompression."""
    width, height = 800, 600
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    elif data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    elif data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data) and data[i] == 0xFF:
            marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height = int.from_bytes(data[i + 5 : i + 7], "big")
                width = int.from_bytes(data[i + 7 : i + 9], "big")
                break
            i += 2 + length
    scale = min(1.0, 1280 / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


class FakeTelegram:
    """The Bot API for any well-formed token; see the module docstring."""

    text_update = staticmethod(_updates.text_update)
    callback_update = staticmethod(_updates.callback_update)
    my_chat_member_update = staticmethod(_updates.my_chat_member_update)
    photo_update = staticmethod(_updates.photo_update)

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._calls: list[TelegramCall] = []
        self._messages: list[TelegramMessage] = []
        self._by_key: dict[tuple[int, int, int], TelegramMessage] = {}
        self._last_id: dict[tuple[int, int], int] = {}
        self._files: dict[str, StoredFile] = {}
        self._failures: list[_Failure] = []
        self._blocked: set[int | str] = set()
        self._revoked: set[str] = set()
        self._webhooks: dict[int, dict[str, Any]] = {}
        self._serial = 0
        self._handlers: dict[str, Callable[[str, dict[str, Any], dict[str, bytes]], Any]] = {
            "getme": lambda token, _p, _f: _updates.bot_user(_bot_id(token), full=True),
            "sendmessage": self._send_message,
            "sendchataction": self._send_chat_action,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "editmessagetext": self._edit_text,
            "editmessagereplymarkup": self._edit_markup,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._webhook_info,
            "getfile": self._get_file,
        } | {name: self._send_media for name in _MEDIA}
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{file_path:path}", self._download, methods=["GET"]),
            ]
        )

    # ---- recording and scripting (thread-safe) ----

    @property
    def calls(self) -> list[TelegramCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[TelegramCall]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def sent_messages(self, chat_id: int | str | None = None) -> list[TelegramMessage]:
        """Messages the bots sent, in order (copies; deleted ones flagged `deleted`)."""
        key = None if chat_id is None else _chat_key(chat_id)
        with self._lock:
            return [copy.deepcopy(m) for m in self._messages if key in (None, m.chat_id)]

    def file(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(file_id)

    def add_file(
        self, token: str, content: bytes, *, kind: str = "photo", file_name: str | None = None
    ) -> str:
        """Store a file as if a user had sent it to the bot; returns its file_id."""
        with self._lock:
            return self._store_file(_bot_id(token), kind, content, file_name).file_id

    def reset(self) -> None:
        """Forget calls, messages, files, scripted failures, blocks and webhooks."""
        with self._lock:
            for store in (self._calls, self._messages, self._failures):
                store.clear()
            for mapping in (self._by_key, self._last_id, self._files, self._webhooks):
                mapping.clear()
            self._blocked.clear()
            self._revoked.clear()

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
        """The next `times` calls of `method` ("*" for any; to `chat_id` if given) fail so."""
        key = None if chat_id is None else _chat_key(chat_id)
        error = TelegramError(error_code, description, retry_after)
        with self._lock:
            self._failures.append(_Failure(method.lower(), error, key, times))

    def rate_limit_next(
        self, method: str, retry_after: int, *, chat_id: int | str | None = None, times: int = 1
    ) -> None:
        description = f"Too Many Requests: retry after {retry_after}"
        self.fail_next(method, error_code=429, description=description,
                       retry_after=retry_after, chat_id=chat_id, times=times)  # fmt: skip

    def block(self, chat_id: int | str) -> None:
        """Sends, edits and chat actions to `chat_id` answer 403 until `unblock`."""
        with self._lock:
            self._blocked.add(_chat_key(chat_id))

    def unblock(self, chat_id: int | str) -> None:
        with self._lock:
            self._blocked.discard(_chat_key(chat_id))

    def revoke_token(self, token: str) -> None:
        """Every call with `token` answers 401 "Unauthorized" (as after /revoke)."""
        with self._lock:
            self._revoked.add(token)

    # ---- HTTP ----

    async def _api(self, request: Request) -> Response:
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
                return TelegramError(400, "Bad Request: can't parse JSON object").response()
            raw |= loaded
        elif request.method == "POST":
            async with request.form(max_part_size=16 * 1024 * 1024) as form:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        files[key] = await value.read()
                        names[key] = value.filename or key
                    else:
                        raw[key] = value
        for key, value in list(raw.items()):  # aiogram: photo="attach://<part>"
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
                files[key] = files.pop(value[9:])
                names[key] = names.pop(value[9:])
        with self._lock:
            call = TelegramCall(method, token, raw, files,
                                datetime.fromtimestamp(self._now(), UTC),
                                request.method, content_type)  # fmt: skip
            self._calls.append(call)
            try:
                call.params = params = _decode(raw)
                params["_file_names"] = names
                result = self._dispatch(token, method.lower(), params, files)
            except TelegramError as exc:
                return exc.response()
            finally:
                call.params.pop("_file_names", None)
        body = {"ok": True, "result": result}
        if method.lower() in ("setwebhook", "deletewebhook"):
            body["description"] = result_description = self._last_webhook_note
            del result_description
        return JSONResponse(body)

    async def _download(self, request: Request) -> Response:
        token, path = request.path_params["token"], request.path_params["file_path"]
        with self._lock:
            found = next((f for f in self._files.values() if f.file_path == path), None)
            valid = _TOKEN.fullmatch(token) and token not in self._revoked
            if found is None or not valid or found.bot_id != _bot_id(token):
                return TelegramError(404, "Not Found").response()
            content, mime = found.content, found.mime_type or "application/octet-stream"
        return Response(content, media_type=mime)

    def _dispatch(
        self, token: str, method: str, params: dict[str, Any], files: dict[str, bytes]
    ) -> Any:
        if not _TOKEN.fullmatch(token) or token in self._revoked:
            raise TelegramError(401, "Unauthorized")
        handler = self._handlers.get(method)
        if handler is None:
            raise TelegramError(404, "Not Found")
        chat = _chat_key(params["chat_id"]) if "chat_id" in params else None
        for failure in self._failures:
            if failure.method in ("*", method) and failure.chat_id in (None, chat):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                raise failure.error
        blockable = method.startswith(("send", "edit", "copy", "forward"))
        if blockable and chat is not None and chat in self._blocked:
            raise TelegramError(403, BLOCKED)
        return handler(token, params, files)

    # ---- methods ----

    def _chat_id(self, params: dict[str, Any]) -> int:
        if params.get("chat_id") in (None, ""):
            raise TelegramError(400, "Bad Request: chat_id is empty")
        chat = _chat_key(params["chat_id"])
        if not isinstance(chat, int):
            raise TelegramError(400, "Bad Request: chat not found")
        return chat

    def _markup(self, params: dict[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if not isinstance(markup, dict):
            return None
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if len(str(button.get("callback_data", "")).encode()) > 64:
                    raise TelegramError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup

    def _record(self, token: str, chat_id: int, kind: str, fields: dict[str, Any],
                params: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        bot_id = _bot_id(token)
        message_id = self._last_id.get((bot_id, chat_id), 0) + 1
        self._last_id[bot_id, chat_id] = message_id
        now = int(self._now())
        payload = {"message_id": message_id, "from": _updates.bot_user(bot_id),
                   "chat": _updates.chat(chat_id), "date": now} | fields  # fmt: skip
        markup = self._markup(params)
        if markup is not None and "inline_keyboard" in markup:  # Telegram echoes inline ones
            payload["reply_markup"] = markup
        message = TelegramMessage(bot_id, chat_id, message_id, kind, payload,
                                  datetime.fromtimestamp(now, UTC), fields.get("text"),
                                  fields.get("caption"), markup)  # fmt: skip
        self._messages.append(message)
        self._by_key[bot_id, chat_id, message_id] = message
        return message

    @staticmethod
    def _check_text(text: Any, empty: str = "Bad Request: message text is empty") -> str:
        if text is None or not str(text).strip():
            raise TelegramError(400, empty)
        if len(str(text)) > MAX_TEXT:
            raise TelegramError(400, "Bad Request: message is too long")
        return str(text)

    def _send_message(self, token: str, params: dict[str, Any], _files: dict[str, bytes]) -> Any:
        chat_id = self._chat_id(params)
        text = self._check_text(params.get("text"))
        return self._record(token, chat_id, "text", {"text": text}, params).payload

    def _send_media(self, token: str, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        field = _MEDIA[next(k for k, v in _MEDIA.items() if v in params or v in files)] if any(
            v in params or v in files for v in _MEDIA.values()) else None  # fmt: skip
        return self._media(token, field, params, files)

    def _media(self, token: str, field: str | None, params: dict[str, Any],
               files: dict[str, bytes]) -> Any:  # fmt: skip
        raise NotImplementedError


def _bot_id(token: str) -> int:
    return int(token.split(":", 1)[0])
