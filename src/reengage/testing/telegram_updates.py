"""Bot API `Update` objects a user's actions would produce, for webhook and polling tests.

Each builder returns the JSON-ready dict Telegram would POST to a webhook (or return from
getUpdates): private chats, the user's id equal to the chat id unless given.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

DEFAULT_BOT_ID = 1000000001  # the bot of the builders unless `bot_id` is given
Date = datetime | int | None


def bot_user(bot_id: int, *, full: bool = False) -> dict[str, Any]:
    """The `User` of a bot; `full` adds the fields only getMe returns."""
    user: dict[str, Any] = {
        "id": bot_id,
        "is_bot": True,
        "first_name": "Fake Bot",
        "username": f"fake{bot_id}_bot",
    }
    if full:
        user |= {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
    return user


def chat(chat_id: int, first_name: str = "Test") -> dict[str, Any]:
    """A `Chat`: private for positive ids, supergroup for -100..., group otherwise."""
    if chat_id > 0:
        return {"id": chat_id, "first_name": first_name, "type": "private"}
    kind = "supergroup" if str(chat_id).startswith("-100") else "group"
    return {"id": chat_id, "title": f"Group {chat_id}", "type": kind}


def text_update(
    update_id: int,
    chat_id: int,
    text: str,
    user_id: int | None = None,
    message_id: int | None = None,
    date: Date = None,
    *,
    first_name: str = "Test",
) -> dict[str, Any]:
    """A private text message; "/command ..." gets its bot_command entity."""
    message = _user_message(chat_id, user_id, message_id or update_id, date, first_name)
    message["text"] = text
    if text.startswith("/"):
        length = len(text.split()[0].encode("utf-16-le")) // 2
        message["entities"] = [{"offset": 0, "length": length, "type": "bot_command"}]
    return {"update_id": update_id, "message": message}


def photo_update(
    update_id: int,
    chat_id: int,
    file_id: str,
    caption: str | None = None,
    user_id: int | None = None,
    message_id: int | None = None,
    date: Date = None,
    *,
    width: int = 1280,
    height: int = 960,
    file_size: int = 65536,
    file_unique_id: str = "AQADfakeUnique",
) -> dict[str, Any]:
    """A private photo message (one PhotoSize; use `add_file` for a downloadable id)."""
    message = _user_message(chat_id, user_id, message_id or update_id, date, "Test")
    size = {"file_id": file_id, "file_unique_id": file_unique_id, "file_size": file_size}
    message["photo"] = [size | {"width": width, "height": height}]
    if caption is not None:
        message["caption"] = caption
    return {"update_id": update_id, "message": message}


def callback_update(
    update_id: int,
    chat_id: int,
    data: str,
    user_id: int | None = None,
    message_id: int = 1,
    date: Date = None,
    *,
    callback_id: str | None = None,
    bot_id: int = DEFAULT_BOT_ID,
    message_text: str = "Choose:",
) -> dict[str, Any]:
    """A button press on the bot's message `message_id`."""
    base = _user_message(chat_id, user_id, message_id, date, "Test")
    keyboard = {"inline_keyboard": [[{"text": data, "callback_data": data}]]}
    bot_message = base | {"from": bot_user(bot_id), "text": message_text}
    query = {
        "id": callback_id or f"{abs(chat_id)}{update_id:06d}",
        "from": base["from"],
        "message": bot_message | {"reply_markup": keyboard},
        "chat_instance": str(-(abs(chat_id) * 7919 % 10**18)),
        "data": data,
    }
    return {"update_id": update_id, "callback_query": query}


def my_chat_member_update(
    update_id: int,
    chat_id: int,
    status: str = "kicked",
    user_id: int | None = None,
    date: Date = None,
    *,
    bot_id: int = DEFAULT_BOT_ID,
) -> dict[str, Any]:
    """The user blocked the bot ("kicked") or unblocked/restarted it ("member")."""
    if status not in ("kicked", "member"):
        msg = f"status must be 'kicked' or 'member', not {status!r}"
        raise ValueError(msg)
    base = _user_message(chat_id, user_id, 0, date, "Test")
    member = {"user": bot_user(bot_id), "status": "member"}
    kicked = {"user": bot_user(bot_id), "status": "kicked", "until_date": 0}
    old, new = (member, kicked) if status == "kicked" else (kicked, member)
    update = {
        "chat": base["chat"],
        "from": base["from"],
        "date": base["date"],
        "old_chat_member": old,
        "new_chat_member": new,
    }
    return {"update_id": update_id, "my_chat_member": update}


def _user_message(
    chat_id: int, user_id: int | None, message_id: int, date: Date, first_name: str
) -> dict[str, Any]:
    when = int(time.time()) if date is None else date
    when = int(when.timestamp()) if isinstance(when, datetime) else when
    user = {"id": user_id or chat_id, "is_bot": False, "first_name": first_name}
    user["language_code"] = "en"
    return {
        "message_id": message_id,
        "from": user,
        "chat": chat(chat_id, first_name),
        "date": when,
    }
