"""What the platforms post to us, read as activity: Telegram updates and WhatsApp Cloud API
notifications, with their signatures. Reading writes nothing; a malformed body raises
`BadUpdate` naming what is wrong."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from reengage.domain.activity import ActivityEvent, EventType, Inbound
from reengage.domain.bounds import text_problem
from reengage.domain.contact import language_tag
from reengage.domain.delivery import StatusUpdate


class BadUpdate(ValueError):
    """The body is not what the platform sends."""


def same_secret(given: str | None, expected: str | None) -> bool:
    """Both present and equal, compared in constant time."""
    return bool(given and expected) and hmac.compare_digest(
        str(given).encode(), str(expected).encode()
    )


_LONG_NUMBER = re.compile(rb"\d{19}")


def json_object(body: bytes) -> dict[str, Any]:
    data = _fast_json(body)
    if data is None:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise BadUpdate("body is not valid JSON (or nested too deeply)") from exc
    if not isinstance(data, dict):
        raise BadUpdate("body must be a JSON object")
    return data


def _fast_json(body: bytes) -> Any:
    """The body by the strict, fast parser; None where Python's must read it: what the fast
    one refuses, or would read as a float (an integer past 64 bits: 19 digits or more)."""
    if _LONG_NUMBER.search(body):
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def user_id(value: Any, where: str) -> str:
    """A platform's user or chat id, as the stores can hold it."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadUpdate(f"{where} must be a string or an integer")
    user = str(value)
    if not 1 <= len(user) <= 128 or text_problem(user):
        raise BadUpdate(f"{where} must be 1 to 128 storable characters")
    return user


# --- Telegram -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Membership:
    """The user blocked the bot (Telegram: the bot was "kicked" from the private chat) or
    unblocked it (a "member" again)."""

    user_id: str
    blocked: bool


@dataclass(frozen=True, slots=True)
class TelegramUpdate:
    events: list[ActivityEvent] = field(default_factory=list)
    membership: Membership | None = None
    callback_query_id: str | None = None  # a button press, to acknowledge


def read_telegram_update(bot_id: int, update: dict[str, Any], now: datetime) -> TelegramUpdate:
    """One update: the user's activity (a message, an edit, a button press) and whether they
    blocked or unblocked the bot. Other kinds of update are nothing to us."""
    update_id = update.get("update_id")
    if not isinstance(update_id, int):
        raise BadUpdate("update_id is missing or not an integer")
    membership = _membership(update)
    query = update.get("callback_query")
    inbound = None
    message = update.get("message") or update.get("edited_message")
    if isinstance(message, dict):
        chat = message.get("chat") or {}
        if not isinstance(chat, dict) or "id" not in chat:
            raise BadUpdate("message.chat.id is missing")
        user = user_id(chat["id"], "message.chat.id")
        sender: dict[str, Any] = message.get("from") or {}
        if not isinstance(sender, dict):
            raise BadUpdate("message.from must be an object")
        text = message.get("text") if "text" in message else message.get("caption")
        if update.get("message"):  # an edit is activity, not a new answer
            inbound = _telegram_inbound(text, sender)
    elif isinstance(query, dict):
        sender = query.get("from") or {}
        if not isinstance(sender, dict) or "id" not in sender:
            raise BadUpdate("callback_query.from.id is missing")
        user = user_id(sender["id"], "callback_query.from.id")
    else:
        return TelegramUpdate(membership=membership)
    event = ActivityEvent(
        f"tg:{update_id}", EventType.USER_MESSAGE, bot_id, user, now, None, inbound
    )
    query_id = query.get("id") if isinstance(query, dict) else None
    return TelegramUpdate([event], membership, str(query_id) if query_id else None)


def _telegram_inbound(text: Any, sender: dict[str, Any]) -> Inbound:
    """What a Telegram message says: its text or caption, its sender's name and language."""
    names = [sender.get("first_name"), sender.get("last_name")]
    name = " ".join(str(n) for n in names if isinstance(n, str) and n) or None
    code = sender.get("language_code")
    return Inbound(
        text if isinstance(text, str) else None,
        name[:200] if name else None,
        None,
        language_tag(code if isinstance(code, str) else None),
    )


def _membership(update: dict[str, Any]) -> Membership | None:
    member = update.get("my_chat_member")
    if not isinstance(member, dict):
        return None
    new, chat = member.get("new_chat_member"), member.get("chat")
    status = new.get("status") if isinstance(new, dict) else None
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if status not in ("kicked", "member") or chat_id is None:
        return None
    return Membership(user_id(chat_id, "my_chat_member.chat.id"), status == "kicked")


# --- WhatsApp -------------------------------------------------------------------------------


def whatsapp_signature_ok(app_secret: str, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256`: sha256=<HMAC-SHA256 of the raw body with the app secret>."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return same_secret(header, "sha256=" + digest)


def read_whatsapp_notification(
    bot_id: int, payload: dict[str, Any], now: datetime
) -> tuple[list[ActivityEvent], list[StatusUpdate]]:
    """A notification's user messages (as activity) and the statuses of our messages."""
    if payload.get("object") != "whatsapp_business_account":
        raise BadUpdate("object must be whatsapp_business_account")
    events: list[ActivityEvent] = []
    statuses: list[StatusUpdate] = []
    try:
        for entry in payload.get("entry", []):
            for change in entry.get("changes", []):
                value = change.get("value", {})
                names = {
                    str(c.get("wa_id")): (c.get("profile") or {}).get("name")
                    for c in value.get("contacts", [])
                }
                for message in value.get("messages", []):
                    events.append(_whatsapp_event(bot_id, message, names, now))
                for status in value.get("statuses", []):
                    error = (status.get("errors") or [{}])[0]
                    statuses.append(
                        StatusUpdate(
                            str(status["id"]),
                            str(status["status"]),
                            error.get("code"),
                            error.get("title"),
                        )
                    )
    except (KeyError, AttributeError, TypeError, ValueError, OverflowError, OSError) as exc:
        if isinstance(exc, BadUpdate):
            raise
        raise BadUpdate(f"malformed WhatsApp payload: {exc!r}") from exc
    return events, statuses


def _whatsapp_event(
    bot_id: int, message: dict[str, Any], names: dict[str, Any], now: datetime
) -> ActivityEvent:
    """A user's message as activity at the time they wrote it (Meta delivers webhooks late
    and retries them for days; the 24-hour window opened when they wrote)."""
    sender = user_id(message["from"], "from")
    written = datetime.fromtimestamp(int(message["timestamp"]), UTC)
    name = names.get(sender)
    inbound = Inbound(
        _whatsapp_text(message), str(name)[:200] if isinstance(name, str) and name else None
    )
    return ActivityEvent(
        f"wa:{message['id']}",
        EventType.USER_MESSAGE,
        bot_id,
        sender,
        min(written, now),
        None,
        inbound,
    )


def _whatsapp_text(message: dict[str, Any]) -> str | None:
    """The words of a message: a text, the title of the button or list row the user chose,
    a template quick-reply's text, or a media caption."""
    kind = message.get("type")
    part = message.get(kind) if isinstance(kind, str) else None
    if not isinstance(part, dict):
        return None
    if kind == "text":
        text = part.get("body")
    elif kind == "interactive":
        reply = part.get("button_reply") or part.get("list_reply") or {}
        text = reply.get("title") if isinstance(reply, dict) else None
    elif kind == "button":
        text = part.get("text")
    else:
        text = part.get("caption")
    return text if isinstance(text, str) else None
