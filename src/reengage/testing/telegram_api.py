"""The in-memory state and methods behind `FakeTelegram` (no HTTP, not thread-safe).

Answers and refusals follow the Bot API (https://core.telegram.org/bots/api): the same result
objects, the same error codes and descriptions.
"""

from __future__ import annotations

import mimetypes
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reengage.testing.telegram_updates import bot_user, chat

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
    ["typing", "choose_sticker", "find_location"]
    + [f"record_{what}" for what in ("video", "voice", "video_note")]
    + [f"upload_{what}" for what in ("photo", "video", "voice", "document", "video_note")]
)
TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")
_INT = re.compile(r"-?\d+")
MEDIA_METHODS = {
    "sendphoto": "photo",
    "sendvideo": "video",
    "sendaudio": "audio",
    "senddocument": "document",
    "sendanimation": "animation",
}
_FILES = {  # kind: (file_path directory, default extension, file_id prefix, default MIME type)
    "photo": ("photos", ".jpg", "AgACAgIAAxkBAAI", None),
    "video": ("videos", ".mp4", "BAACAgIAAxkBAAI", "video/mp4"),
    "audio": ("music", ".mp3", "CQACAgIAAxkBAAI", "audio/mpeg"),
    "document": ("documents", "", "BQACAgIAAxkBAAI", "application/octet-stream"),
    "animation": ("animations", ".mp4", "CgACAgIAAxkBAAI", "video/mp4"),
}
_ATTRS = {  # attributes Telegram reads from the file; here from the call or these defaults
    "video": {"width": 640, "height": 360, "duration": 1},
    "animation": {"width": 320, "height": 240, "duration": 1},
    "audio": {"duration": 1},
}
_DOCUMENT_KEYS = ("file_id", "file_unique_id", "file_name", "mime_type", "file_size")

Uploads = dict[str, tuple[str, bytes]]  # field -> (file name, content)


class TelegramError(Exception):
    """A refusal: `{"ok": false, "error_code": ..., "description": ..., "parameters": ...}`."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error_code, self.description, self.retry_after = error_code, description, retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class TelegramMessage:
    """A message a bot sent; `payload` is the Message object as last returned."""

    bot_id: int
    chat_id: int
    message_id: int
    kind: str  # "text", "photo", "video", "audio", "document", "animation"
    payload: dict[str, Any]
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
    file_name: str | None = None
    mime_type: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  # width, height, duration, ...


def _utf16(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def bot_id_of(token: str) -> int:
    return int(token.split(":", 1)[0])


def chat_key(value: Any) -> int | str:
    """A chat id as Telegram reads it: numeric ids as int, "@username" as is."""
    text = str(value)
    return int(text) if _INT.fullmatch(text) else text


def image_size(data: bytes) -> tuple[int, int]:
    """PNG, GIF or JPEG dimensions, scaled to fit 1280 px like Telegram's recompression."""
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


Handler = Callable[[str, str, dict[str, Any], Uploads], Any]


class BotApi:
    """Bot API methods over in-memory chats and files. `call` returns a result, or a
    `(result, description)` pair, or raises `TelegramError`."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.messages: list[TelegramMessage] = []
        self.files: dict[str, StoredFile] = {}
        self._by_key: dict[tuple[int, int, int], TelegramMessage] = {}
        self._last_id: dict[tuple[int, int], int] = {}
        self._webhooks: dict[int, dict[str, Any]] = {}
        self._serial = 0
        self._handlers: dict[str, Handler] = {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "sendchataction": self._send_chat_action,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "editmessagetext": self._edit_message,
            "editmessagereplymarkup": self._edit_message,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._set_webhook,
            "getfile": self._get_file,
        }
        self._handlers.update(dict.fromkeys(MEDIA_METHODS, self._send_media))

    def call(self, token: str, method: str, params: dict[str, Any], uploads: Uploads) -> Any:
        handler = self._handlers.get(method.lower())
        if handler is None:
            raise TelegramError(404, "Not Found")
        return handler(token, method.lower(), params, uploads)

    def webhook(self, bot_id: int) -> dict[str, Any] | None:
        """What the bot's last `setWebhook` registered (url, secret_token, ...), if any."""
        return self._webhooks.get(bot_id)

    def clear(self) -> None:
        self.messages.clear()
        self.files.clear()
        self._by_key.clear()
        self._last_id.clear()
        self._webhooks.clear()

    def store_file(
        self, bot_id: int, kind: str, content: bytes, name: str | None, attrs: dict[str, Any]
    ) -> StoredFile:
        self._serial += 1
        directory, extension, prefix, mime = _FILES[kind]
        if kind == "animation" and name and not name.endswith(".mp4"):
            name += ".mp4"  # Telegram converts GIFs to silent MPEG4 videos
        elif name and "." in name and kind != "photo":
            extension = "." + name.rsplit(".", 1)[1]
            mime = mimetypes.guess_type(name)[0] or mime
        unique = ("AQAD" if kind == "photo" else "AgAD") + secrets.token_urlsafe(9)
        path = f"{directory}/file_{self._serial}{extension}"
        file_name = None if kind == "photo" else name
        stored = StoredFile(
            prefix + secrets.token_urlsafe(48),
            unique,
            bot_id,
            kind,
            content,
            path,
            file_name,
            mime,
            attrs,
        )
        self.files[stored.file_id] = stored
        return stored

    # ---- helpers ----

    @staticmethod
    def _chat_id(params: dict[str, Any]) -> int:
        if params.get("chat_id") in (None, ""):
            raise TelegramError(400, "Bad Request: chat_id is empty")
        key = chat_key(params["chat_id"])
        if not isinstance(key, int):
            raise TelegramError(400, "Bad Request: chat not found")
        return key

    @staticmethod
    def _text(value: Any) -> str:
        if value is None or not str(value).strip():
            raise TelegramError(400, "Bad Request: message text is empty")
        if _utf16(str(value)) > MAX_TEXT:
            raise TelegramError(400, "Bad Request: message is too long")
        return str(value)

    @staticmethod
    def _markup(params: dict[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if not isinstance(markup, dict):
            return None
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if len(str(button.get("callback_data", "")).encode()) > 64:
                    raise TelegramError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup

    def _record(
        self, token: str, chat_id: int, kind: str, fields: dict[str, Any], params: dict[str, Any]
    ) -> TelegramMessage:
        markup = self._markup(params)
        bot_id = bot_id_of(token)
        message_id = self._last_id[bot_id, chat_id] = self._last_id.get((bot_id, chat_id), 0) + 1
        date = int(self.now())
        payload = {
            "message_id": message_id,
            "from": bot_user(bot_id),
            "chat": chat(chat_id),
            "date": date,
            **fields,
        }
        if markup is not None and "inline_keyboard" in markup:  # only inline ones are echoed
            payload["reply_markup"] = markup
        message = TelegramMessage(
            bot_id,
            chat_id,
            message_id,
            kind,
            payload,
            datetime.fromtimestamp(date, UTC),
            fields.get("text"),
            fields.get("caption"),
            markup,
        )
        self.messages.append(message)
        self._by_key[bot_id, chat_id, message_id] = message
        return message

    def _message(self, token: str, params: dict[str, Any], missing: str) -> TelegramMessage:
        chat_id = self._chat_id(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise TelegramError(400, "Bad Request: message identifier is not specified")
        message = self._by_key.get((bot_id_of(token), chat_id, message_id))
        if message is None or message.deleted:
            raise TelegramError(400, missing)
        return message

    def _input_file(
        self, token: str, kind: str, params: dict[str, Any], uploads: Uploads
    ) -> StoredFile:
        bot_id, ref = bot_id_of(token), params.get(kind)
        attrs = {k: params.get(k, d) for k, d in _ATTRS.get(kind, {}).items()}
        attrs |= {k: params[k] for k in ("title", "performer") if kind == "audio" and k in params}
        if kind in uploads:
            name, content = uploads[kind]
            if not content:
                raise TelegramError(400, "Bad Request: file must be non-empty")
            return self.store_file(bot_id, kind, content, name, attrs)
        if not isinstance(ref, str) or not ref:
            raise TelegramError(400, f"Bad Request: there is no {kind} in the request")
        if ref.startswith(("http://", "https://")):  # Telegram would download it
            return self.store_file(bot_id, kind, b"", ref.rsplit("/", 1)[-1] or None, attrs)
        stored = self.files.get(ref)
        if stored is None or stored.bot_id != bot_id:
            raise TelegramError(400, WRONG_FILE)
        if (stored.kind == "photo") != (kind == "photo"):
            raise TelegramError(400, "Bad Request: type of file mismatch")
        return stored

    # ---- methods ----

    def _get_me(self, token: str, _m: str, _p: dict[str, Any], _u: Uploads) -> Any:
        return bot_user(bot_id_of(token), full=True)

    def _send_message(self, token: str, _m: str, params: dict[str, Any], _u: Uploads) -> Any:
        chat_id = self._chat_id(params)
        text = self._text(params.get("text"))
        return self._record(token, chat_id, "text", {"text": text}, params).payload

    def _send_media(self, token: str, method: str, params: dict[str, Any], up: Uploads) -> Any:
        kind = MEDIA_METHODS[method]
        chat_id = self._chat_id(params)
        caption = params.get("caption")
        if caption is not None and _utf16(str(caption)) > MAX_CAPTION:
            raise TelegramError(400, "Bad Request: message caption is too long")
        stored = self._input_file(token, kind, params, up)
        media: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
        }
        fields: dict[str, Any]
        if kind == "photo":
            width, height = image_size(stored.content)
            fields = {"photo": [media | {"width": width, "height": height}]}
        else:
            media |= stored.attrs
            if stored.file_name:
                media["file_name"] = stored.file_name
            if stored.mime_type:
                media["mime_type"] = stored.mime_type
            fields = {kind: media}
            if kind == "animation":  # Telegram keeps it for backward compatibility
                fields["document"] = {k: v for k, v in media.items() if k in _DOCUMENT_KEYS}
        if caption:
            fields["caption"] = str(caption)
        message = self._record(token, chat_id, kind, fields, params)
        message.file_id = stored.file_id
        return message.payload

    def _send_chat_action(self, _t: str, _m: str, params: dict[str, Any], _u: Uploads) -> Any:
        self._chat_id(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise TelegramError(400, "Bad Request: wrong parameter action in request")
        return True

    def _delete_message(self, token: str, _m: str, params: dict[str, Any], _u: Uploads) -> Any:
        message = self._message(token, params, "Bad Request: message to delete not found")
        if self.now() - message.payload["date"] > DELETE_WINDOW:
            raise TelegramError(400, "Bad Request: message can't be deleted for everyone")
        message.deleted = True
        return True

    def _edit_message(self, token: str, method: str, params: dict[str, Any], _u: Uploads) -> Any:
        markup = self._markup(params)
        edit_text = method == "editmessagetext"
        text = self._text(params.get("text")) if edit_text else None
        if params.get("inline_message_id"):
            return True
        message = self._message(token, params, "Bad Request: message to edit not found")
        if edit_text and message.text is None:
            raise TelegramError(400, "Bad Request: there is no text in the message to edit")
        if (text is None or text == message.text) and markup == message.reply_markup:
            raise TelegramError(400, NOT_MODIFIED)
        if text is not None:
            message.text = message.payload["text"] = text
        message.reply_markup = markup
        message.payload.pop("reply_markup", None)
        if markup is not None and "inline_keyboard" in markup:
            message.payload["reply_markup"] = markup
        message.payload["edit_date"] = int(self.now())
        message.edited = True
        return message.payload

    def _answer_callback_query(self, _t: str, _m: str, p: dict[str, Any], _u: Uploads) -> Any:
        if not p.get("callback_query_id"):
            msg = "Bad Request: query is too old and response timeout expired or query ID is "
            msg += "invalid"
            raise TelegramError(400, msg)
        return True

    def _set_webhook(self, token: str, method: str, params: dict[str, Any], _u: Uploads) -> Any:
        bot_id, url = bot_id_of(token), str(params.get("url", ""))
        if method == "deletewebhook" or not url:
            existed = self._webhooks.pop(bot_id, None) is not None
            return True, "Webhook was deleted" if existed else "Webhook is already deleted"
        if not url.startswith("https://"):
            msg = "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            raise TelegramError(400, msg)
        keys = ("url", "secret_token", "max_connections", "allowed_updates")
        webhook = {k: params[k] for k in keys if k in params}
        same = self._webhooks.get(bot_id) == webhook
        self._webhooks[bot_id] = webhook
        return True, "Webhook is already set" if same else "Webhook was set"

    def _get_file(self, token: str, _m: str, params: dict[str, Any], _u: Uploads) -> Any:
        stored = self.files.get(str(params.get("file_id", "")))
        if stored is None or stored.bot_id != bot_id_of(token):
            raise TelegramError(400, "Bad Request: invalid file_id")
        if len(stored.content) > MAX_DOWNLOAD:
            raise TelegramError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }
