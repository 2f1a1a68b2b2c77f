"""The Telegram and WhatsApp fakes speak the real wire formats.

Telegram is driven by a real aiogram `Bot` (only the API base URL differs from production);
WhatsApp by plain httpx, as the Cloud API adapter does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup, Update

from reengage.testing.server import RunningServer, serve
from reengage.testing.telegram import FakeTelegram
from reengage.testing.whatsapp import FakeWhatsApp

T = TypeVar("T")
TOKEN = "123456:AAH-fake_token"
OTHER_TOKEN = "654321:BBH-other_token"
# A 16x8 PNG header is enough for the fake to read the dimensions.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x08" + b"\x00" * 40


# ---------------------------------------------------------------- Telegram


@pytest.fixture(scope="module")
def telegram_server() -> Iterator[tuple[FakeTelegram, RunningServer]]:
    fake = FakeTelegram()
    with serve(fake.app) as server:
        yield fake, server


@pytest.fixture
def tg(telegram_server: tuple[FakeTelegram, RunningServer]) -> FakeTelegram:
    fake, _ = telegram_server
    fake.reset()
    return fake


@pytest.fixture
def run_bot(
    telegram_server: tuple[FakeTelegram, RunningServer],
) -> Callable[..., Any]:
    api = TelegramAPIServer.from_base(telegram_server[1].url)

    def run(script: Callable[..., Awaitable[T]], *tokens: str) -> T:
        async def main() -> T:
            bots = [Bot(t, session=AiohttpSession(api=api)) for t in tokens or (TOKEN,)]
            try:
                return await script(*bots)
            finally:
                await asyncio.gather(*(bot.session.close() for bot in bots))

        return asyncio.run(main())

    return run


def test_send_message_returns_a_complete_message(tg: FakeTelegram, run_bot: Any) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="yes")]]
    )

    async def script(bot: Bot) -> Any:
        me = await bot.get_me()
        sent = await bot.send_message(42, "hello", reply_markup=keyboard)
        return me, sent

    me, sent = run_bot(script)
    assert (me.id, me.is_bot) == (123456, True)
    assert sent.message_id == 1
    assert (sent.chat.id, sent.chat.type, sent.text) == (42, "private", "hello")
    assert sent.from_user is not None
    assert sent.from_user.id == 123456
    assert sent.reply_markup is not None
    assert sent.reply_markup.model_dump() == keyboard.model_dump()
    call = tg.calls_to("sendMessage")[0]
    assert call.content_type.startswith("application/x-www-form-urlencoded")
    assert call.params == {
        "chat_id": 42,
        "text": "hello",
        "reply_markup": {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]},
    }
    [stored] = tg.sent_messages(42)
    assert (stored.text, stored.deleted, stored.payload["message_id"]) == ("hello", False, 1)


def test_photo_upload_then_reuse_by_file_id(tg: FakeTelegram, run_bot: Any) -> None:
    async def script(bot: Bot) -> Any:
        first = await bot.send_photo(42, BufferedInputFile(PNG, "cat.png"), caption="a cat")
        assert first.photo is not None
        again = await bot.send_photo(7, first.photo[-1].file_id)
        return first, again

    first, again = run_bot(script)
    size = first.photo[-1]
    assert (size.width, size.height, size.file_size) == (16, 8, len(PNG))
    assert first.caption == "a cat"
    assert again.photo[-1].file_unique_id == size.file_unique_id
    upload, reuse = tg.calls_to("sendPhoto")
    assert upload.content_type.startswith("multipart/form-data")
    assert upload.files == {"photo": PNG}
    assert str(upload.params["photo"]).startswith("attach://")
    assert reuse.files == {}
    assert reuse.params["photo"] == size.file_id
    assert [m.file_id for m in tg.sent_messages()] == [size.file_id, size.file_id]


def test_a_file_id_of_another_bot_is_refused(tg: FakeTelegram, run_bot: Any) -> None:
    async def script(bot: Bot, other: Bot) -> None:
        sent = await bot.send_document(42, BufferedInputFile(b"%PDF-1.4", "terms.pdf"))
        assert sent.document is not None
        assert (sent.document.file_name, sent.document.mime_type) == (
            "terms.pdf",
            "application/pdf",
        )
        with pytest.raises(TelegramBadRequest) as refused:
            await other.send_document(42, sent.document.file_id)
        assert refused.value.message == "Bad Request: wrong file identifier/HTTP URL specified"
        with pytest.raises(TelegramBadRequest, match="type of file mismatch"):
            await bot.send_photo(42, sent.document.file_id)

    run_bot(script, TOKEN, OTHER_TOKEN)


def test_scripted_refusals_surface_as_aiogram_errors(tg: FakeTelegram, run_bot: Any) -> None:
    tg.rate_limit_next("sendMessage", 7)
    tg.block(99)

    async def script(bot: Bot) -> None:
        with pytest.raises(TelegramRetryAfter) as limited:
            await bot.send_message(42, "one")
        assert limited.value.retry_after == 7
        assert (await bot.send_message(42, "two")).message_id == 1  # only the next call
        with pytest.raises(TelegramForbiddenError) as blocked:
            await bot.send_message(99, "hi")
        assert blocked.value.message == "Forbidden: bot was blocked by the user"
        with pytest.raises(TelegramForbiddenError):
            await bot.send_chat_action(99, "typing")
        tg.unblock(99)
        assert (await bot.send_message(99, "back")).text == "back"

    run_bot(script)
    assert [c.params.get("text") for c in tg.calls_to("sendMessage")] == [
        "one",
        "two",
        "hi",
        "back",
    ]


def test_text_limits_are_telegrams(tg: FakeTelegram, run_bot: Any) -> None:
    async def script(bot: Bot) -> None:
        with pytest.raises(TelegramBadRequest, match="message is too long"):
            await bot.send_message(42, "x" * 4097)
        with pytest.raises(TelegramBadRequest, match="message text is empty"):
            await bot.send_message(42, " ")
        with pytest.raises(TelegramBadRequest, match="message caption is too long"):
            await bot.send_photo(42, BufferedInputFile(PNG, "a.png"), caption="c" * 1025)
        assert (await bot.send_message(42, "x" * 4096)).message_id == 1

    run_bot(script)


def test_delete_edit_and_chat_action(tg: FakeTelegram, run_bot: Any) -> None:
    async def script(bot: Bot) -> None:
        sent = await bot.send_message(42, "first")
        edited = await bot.edit_message_text("second", chat_id=42, message_id=sent.message_id)
        assert not isinstance(edited, bool)
        assert edited.edit_date is not None
        with pytest.raises(TelegramBadRequest, match="message is not modified"):
            await bot.edit_message_text("second", chat_id=42, message_id=sent.message_id)
        assert await bot.send_chat_action(42, "typing") is True
        assert await bot.delete_message(42, sent.message_id) is True
        with pytest.raises(TelegramBadRequest) as missing:
            await bot.delete_message(42, sent.message_id)
        assert missing.value.message == "Bad Request: message to delete not found"

    run_bot(script)
    [message] = tg.sent_messages(42)
    assert (message.text, message.edited, message.deleted) == ("second", True, True)
    assert tg.calls_to("sendChatAction")[0].params == {"chat_id": 42, "action": "typing"}


def test_get_file_and_download(tg: FakeTelegram, run_bot: Any) -> None:
    content = bytes(range(256)) * 10

    async def script(bot: Bot) -> Any:
        sent = await bot.send_video(42, BufferedInputFile(content, "clip.mp4"), duration=3)
        assert sent.video is not None
        file = await bot.get_file(sent.video.file_id)
        downloaded = await bot.download(sent.video.file_id)
        assert downloaded is not None
        return sent.video, file, downloaded.read()

    video, file, downloaded = run_bot(script)
    assert (video.duration, video.mime_type, video.file_size) == (3, "video/mp4", len(content))
    assert file.file_path is not None
    assert file.file_path.startswith("videos/")
    assert downloaded == content


def test_raw_http_speaks_the_bot_api_envelope(
    tg: FakeTelegram, telegram_server: tuple[FakeTelegram, RunningServer]
) -> None:
    base = f"{telegram_server[1].url}/bot{TOKEN}"
    tg.fail_next(
        "sendMessage", error_code=429, description="Too Many Requests: retry after 3", retry_after=3
    )
    with httpx.Client() as http:
        limited = http.post(f"{base}/sendMessage", json={"chat_id": 5, "text": "hi"})
        sent = http.post(f"{base}/sendMessage", json={"chat_id": 5, "text": "hi"})
        unknown = http.get(f"{base}/noSuchMethod")
        unauthorized = http.get(f"{telegram_server[1].url}/botnot-a-token/getMe")
    assert limited.status_code == 429
    assert limited.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    assert sent.status_code == 200
    assert sent.json()["result"]["text"] == "hi"
    assert (unknown.status_code, unknown.json()["description"]) == (404, "Not Found")
    assert (unauthorized.status_code, unauthorized.json()["description"]) == (401, "Unauthorized")


def test_inbound_update_builders_parse_as_aiogram_updates() -> None:
    text = Update.model_validate(FakeTelegram.text_update(1, 42, "/start promo"))
    assert text.message is not None
    assert text.message.text == "/start promo"
    assert text.message.entities is not None
    assert text.message.entities[0].length == 6
    button = Update.model_validate(FakeTelegram.callback_update(2, 42, "yes"))
    assert button.callback_query is not None
    assert button.callback_query.data == "yes"
    kicked = Update.model_validate(FakeTelegram.my_chat_member_update(3, 42, "kicked"))
    assert kicked.my_chat_member is not None
    assert kicked.my_chat_member.new_chat_member.status == "kicked"
    photo = Update.model_validate(FakeTelegram.photo_update(4, 42, "AgACfile", caption="look"))
    assert photo.message is not None
    assert photo.message.photo is not None
    assert photo.message.photo[-1].file_id == "AgACfile"


# ---------------------------------------------------------------- WhatsApp

WA_TOKEN = "EAAG-fake-access-token"
PHONE_ID = "106540352242922"


@pytest.fixture(scope="module")
def whatsapp_server() -> Iterator[tuple[FakeWhatsApp, RunningServer]]:
    fake = FakeWhatsApp(access_tokens=[WA_TOKEN])
    with serve(fake.app) as server:
        yield fake, server


@pytest.fixture
def wa(whatsapp_server: tuple[FakeWhatsApp, RunningServer]) -> FakeWhatsApp:
    whatsapp_server[0].reset()
    return whatsapp_server[0]


@pytest.fixture
def graph(whatsapp_server: tuple[FakeWhatsApp, RunningServer]) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {WA_TOKEN}"}
    with httpx.Client(base_url=f"{whatsapp_server[1].url}/v21.0", headers=headers) as client:
        yield client


def text_body(to: str, text: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": text, "preview_url": False},
    }


def test_whatsapp_send_text(wa: FakeWhatsApp, graph: httpx.Client) -> None:
    response = graph.post(f"/{PHONE_ID}/messages", json=text_body("+1 650-555-1234", "hello"))
    assert response.status_code == 200
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+1 650-555-1234", "wa_id": "16505551234"}]
    [message] = body["messages"]
    assert message["id"].startswith("wamid.")
    [sent] = wa.sent_messages("16505551234")
    assert (sent.id, sent.text, sent.phone_number_id) == (message["id"], "hello", PHONE_ID)
    assert wa.calls[0].token == WA_TOKEN


def test_whatsapp_upload_media_then_send_image_by_id(wa: FakeWhatsApp, graph: httpx.Client) -> None:
    upload = graph.post(
        f"/{PHONE_ID}/media",
        data={"messaging_product": "whatsapp", "type": "image/png"},
        files={"file": ("cat.png", PNG, "image/png")},
    )
    assert upload.status_code == 200
    media_id = upload.json()["id"]
    assert media_id.isdigit()
    image = {"id": media_id, "caption": "a cat"}
    body = {"messaging_product": "whatsapp", "to": "15550001111", "type": "image", "image": image}
    assert graph.post(f"/{PHONE_ID}/messages", json=body).status_code == 200
    info = graph.get(f"/{media_id}").json()
    assert info["mime_type"] == "image/png"
    assert info["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert graph.get(info["url"]).content == PNG
    assert wa.calls_to("media")[0].files == {"file": PNG}
    assert wa.sent_messages()[0].text == "a cat"
    unknown = {"messaging_product": "whatsapp", "to": "1555", "type": "image", "image": {"id": "9"}}
    refused = graph.post(f"/{PHONE_ID}/messages", json=unknown)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, 131009)


def test_whatsapp_scripted_reengagement_error_shape(wa: FakeWhatsApp, graph: httpx.Client) -> None:
    wa.reengagement_next(to="15550001111")
    refused = graph.post(f"/{PHONE_ID}/messages", json=text_body("15550001111", "hi"))
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert set(error) == {"message", "type", "code", "error_data", "fbtrace_id"}
    assert (error["code"], error["type"]) == (131047, "OAuthException")
    assert error["message"] == "(#131047) Re-engagement message"
    assert error["error_data"] == {
        "messaging_product": "whatsapp",
        "details": "Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number.",
    }
    again = graph.post(f"/{PHONE_ID}/messages", json=text_body("15550001111", "hi"))
    assert again.status_code == 200  # only the next call
    assert len(wa.sent_messages()) == 1
    assert len(wa.calls_to("messages")) == 2
    wa.rate_limit_next()
    limited = graph.post(f"/{PHONE_ID}/messages", json=text_body("15550002222", "hi"))
    assert limited.json()["error"]["code"] == 130429


def test_whatsapp_auth_and_validation(
    wa: FakeWhatsApp, graph: httpx.Client, whatsapp_server: tuple[FakeWhatsApp, RunningServer]
) -> None:
    url = f"{whatsapp_server[1].url}/v21.0/{PHONE_ID}/messages"
    with httpx.Client() as anonymous:
        missing = anonymous.post(url, json=text_body("15550001111", "hi"))
        wrong = anonymous.post(
            url, json=text_body("1555", "hi"), headers={"Authorization": "Bearer nope"}
        )
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == 190
        assert response.json()["error"]["type"] == "OAuthException"
    too_long = graph.post(f"/{PHONE_ID}/messages", json=text_body("15550001111", "x" * 4097))
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == 100
    assert "Invalid parameter" in too_long.json()["error"]["message"]
    assert wa.sent_messages() == []


def test_whatsapp_webhook_payload_builders() -> None:
    inbound = FakeWhatsApp.inbound_text_payload(
        PHONE_ID, "15550783881", "16505551234", "hi", "wamid.IN1", 1700000000
    )
    assert inbound["object"] == "whatsapp_business_account"
    change = inbound["entry"][0]["changes"][0]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["metadata"] == {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID}
    assert value["contacts"] == [{"profile": {"name": "Test User"}, "wa_id": "16505551234"}]
    assert value["messages"] == [
        {
            "from": "16505551234",
            "id": "wamid.IN1",
            "timestamp": "1700000000",
            "text": {"body": "hi"},
            "type": "text",
        }
    ]
    sent = FakeWhatsApp.status_payload(PHONE_ID, "wamid.X", "sent", "16505551234", 1700000000)
    status = sent["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["conversation"]["expiration_timestamp"] == "1700086400"
    assert status["pricing"]["category"] == "service"
    failed = FakeWhatsApp.status_payload(
        PHONE_ID,
        "wamid.X",
        "failed",
        "16505551234",
        1700000000,
        errors=[FakeWhatsApp.status_error(131047)],
    )
    [error] = failed["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"]
    assert (error["code"], error["title"]) == (131047, "Re-engagement message")
    body = json.dumps(inbound).encode()
    expected = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert FakeWhatsApp.signature("secret", body) == f"sha256={expected}"
