"""Drive the manager bot like an admin's Telegram client: real Dispatcher, fake Bot API."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from reengage.entrypoints.manager_bot.dispatcher import build_dispatcher, manager_bot, storage_for
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram, TelegramMessage
from reengage.testing.telegram_api import bot_id_of

MANAGER_TOKEN = "777000:MANAGER-token"
MANAGER_BOT_ID = bot_id_of(MANAGER_TOKEN)


class Console:
    """Updates go through `Dispatcher.feed_raw_update`; answers are read from the fake."""

    def __init__(self, runtime: Runtime, fake: FakeTelegram, api_base: str) -> None:
        self.runtime, self.fake = runtime, fake
        self.loop = asyncio.new_event_loop()
        self.bot = manager_bot(MANAGER_TOKEN, api_base)
        self.dp = build_dispatcher(runtime, storage_for(runtime.settings))
        self.ids = itertools.count(1)
        self.current: dict[int, int] = {}
        self.presses = 0  # chat -> the message the admin looks at

    def close(self) -> None:
        self.loop.run_until_complete(self.bot.session.close())
        self.loop.run_until_complete(self.dp.storage.close())
        self.loop.close()

    def feed(self, update: dict[str, Any]) -> None:
        seen = len(self.fake.calls)
        self.loop.run_until_complete(self.dp.feed_raw_update(self.bot, update))
        for call in self.fake.calls[seen:]:
            chat = call.params.get("chat_id")
            if call.token != MANAGER_TOKEN or not isinstance(chat, int):
                continue
            if call.method == "editMessageText":
                self.current[chat] = int(call.params["message_id"])
            elif call.method == "sendMessage":
                self.current[chat] = max(m.message_id for m in self.messages(chat))

    def send(self, user: int, text: str) -> None:
        self.feed(FakeTelegram.text_update(next(self.ids), user, text))

    def send_photo(self, user: int, content: bytes, caption: str | None = None) -> None:
        file_id = self.fake.add_file(MANAGER_TOKEN, content, kind="photo")
        self.feed(FakeTelegram.photo_update(next(self.ids), user, file_id, caption))

    def messages(self, user: int) -> list[TelegramMessage]:
        return [m for m in self.fake.sent_messages(user) if m.bot_id == MANAGER_BOT_ID]

    def screen(self, user: int) -> str:
        """The text of the manager bot's latest message (edits included) in this chat."""
        return self.last(user).text or ""

    def last(self, user: int) -> TelegramMessage:
        [message] = [m for m in self.messages(user) if m.message_id == self.current[user]]
        return message

    def buttons(self, user: int) -> dict[str, str]:
        """Label -> callback_data of the latest message's keyboard."""
        markup = self.last(user).reply_markup or {}
        return {
            b["text"]: b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row
        }

    def data_of(self, user: int, label: str) -> str:
        buttons = self.buttons(user)
        assert label in buttons, f"{label!r} not in {list(buttons)}"
        return buttons[label]

    def press(self, user: int, label: str) -> None:
        self.press_data(user, self.data_of(user, label))

    def press_data(self, user: int, data: str, message_id: int | None = None) -> None:
        message_id = message_id or self.last(user).message_id
        self.presses += 1
        update = FakeTelegram.callback_update(
            next(self.ids), user, data, message_id=message_id, bot_id=MANAGER_BOT_ID
        )
        self.feed(update)

    def answers(self) -> list[dict[str, Any]]:
        return [c.params for c in self.fake.calls_to("answerCallbackQuery")]

    def all_callback_data(self) -> list[str]:
        """Every callback_data of every keyboard the manager bot sent or edited in."""
        calls = [c for c in self.fake.calls if c.token == MANAGER_TOKEN]
        found = []
        for call in calls:
            markup = call.params.get("reply_markup")
            if isinstance(markup, dict):
                for row in markup.get("inline_keyboard", []):
                    found += [b["callback_data"] for b in row if "callback_data" in b]
        return found
