"""One suite, every channel adapter, each against its platform's fake on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from reengage.adapters.channels.simulator import SimulatorChannel
from reengage.adapters.channels.telegram import TelegramChannel
from reengage.adapters.channels.webhook import WebhookChannel
from reengage.adapters.channels.whatsapp import WhatsAppChannel
from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import SimulatorMessage
from reengage.adapters.pacing import InMemoryPacer
from reengage.domain.outbound import (
    Failed,
    Media,
    MessageKind,
    OutboundMessage,
    SendContext,
    Sent,
    Skipped,
    Superseded,
    Template,
)
from reengage.ports import Channel
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram
from reengage.testing.whatsapp import FakeWhatsApp
from tests.channel_harness import TG_TOKEN, WA_PHONE, WA_TOKEN, WebhookReceiver
from tests.conftest import fresh_database
from tests.factories import make_bot, make_org

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPEN = SendContext(NOW, window_expires_at=NOW + timedelta(hours=1))
CHAT = "5511987654321"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class Harness:
    channel: Channel
    texts: Callable[[], list[str]]  # what the user's side received, in order
    uploads: Callable[[], int]  # how many file uploads the platform saw


@pytest.fixture(params=["telegram", "whatsapp", "webhook", "simulator"])
def harness(request: pytest.FixtureRequest, clock: ManualClock) -> Harness:
    kind = request.param
    if kind == "telegram":
        fake: FakeTelegram = request.getfixturevalue("fake_telegram")
        channel = TelegramChannel(
            TG_TOKEN,
            bot_key="1",
            clock=clock,
            pacer=InMemoryPacer(),
            api_base=request.getfixturevalue("telegram_url"),
        )
        return Harness(
            channel,
            lambda: [m.text or m.caption or "" for m in fake.sent_messages()],
            lambda: sum(1 for c in fake.calls if c.files),
        )
    if kind == "whatsapp":
        wa: FakeWhatsApp = request.getfixturevalue("fake_whatsapp")
        channel_wa = WhatsAppChannel(
            WA_PHONE,
            WA_TOKEN,
            pacer=InMemoryPacer(),
            api_base=request.getfixturevalue("whatsapp_url"),
        )
        return Harness(
            channel_wa,
            lambda: [m.text or "" for m in wa.sent_messages()],
            lambda: len(wa.calls_to("media")),
        )
    if kind == "webhook":
        receiver, url = request.getfixturevalue("webhook_receiver")
        assert isinstance(receiver, WebhookReceiver)
        return Harness(
            WebhookChannel(url, receiver.secret),
            lambda: [p.get("text") or "" for p in receiver.received if p["type"] == "message.send"],
            lambda: sum(
                1 for p in receiver.received if (p.get("media") or {}).get("content_base64")
            ),
        )
    url = fresh_database("sqlite", request, request.getfixturevalue("tmp_path"))
    runtime: Runtime = request.getfixturevalue("make_runtime")(url)
    org = make_org(runtime)
    bot = make_bot(runtime, org.org_id)

    def sim_texts() -> list[str]:
        with runtime.sessions() as s:
            return [
                m.text or ""
                for m in s.scalars(select(SimulatorMessage).order_by(SimulatorMessage.id))
            ]

    return Harness(SimulatorChannel(runtime.sessions, org.org_id, bot), sim_texts, lambda: 0)


def test_text_is_sent_with_a_message_id(harness: Harness) -> None:
    outcome = harness.channel.send(
        CHAT, OutboundMessage(MessageKind.TEXT, "Olá! Ainda por aí?"), OPEN
    )
    assert isinstance(outcome, Sent)
    assert outcome.message_id
    assert harness.texts() == ["Olá! Ainda por aí?"]


def test_a_message_whose_in_flight_mark_is_refused_never_leaves(harness: Harness) -> None:
    """Every channel asks for its request's in-flight mark right before the message leaves,
    and sends nothing when the mark is refused (another run took the delivery over)."""
    asked: list[bool] = []

    def mark(answer: bool) -> Callable[[], bool]:
        return lambda: asked.append(answer) or answer

    message = OutboundMessage(MessageKind.TEXT, "Olá! Ainda por aí?")
    refused = harness.channel.send(CHAT, message, replace(OPEN, on_request=mark(False)))
    assert isinstance(refused, Superseded)
    assert asked == [False]
    assert harness.texts() == []
    sent = harness.channel.send(CHAT, message, replace(OPEN, on_request=mark(True)))
    assert isinstance(sent, Sent)
    assert asked == [False, True]
    assert harness.texts() == ["Olá! Ainda por aí?"]


def test_media_is_uploaded_once_then_sent_by_its_platform_id(harness: Harness) -> None:
    photo = Media(content=PNG, filename="offer.png", content_type="image/png")
    first = harness.channel.send(CHAT, OutboundMessage(MessageKind.PHOTO, "Oferta", photo), OPEN)
    assert isinstance(first, Sent)
    uploads = harness.uploads()
    if first.file_id:
        again = Media(file_id=first.file_id, filename="offer.png", content_type="image/png")
        second = harness.channel.send(
            CHAT, OutboundMessage(MessageKind.PHOTO, "De novo", again), OPEN
        )
        assert isinstance(second, Sent)
        assert harness.uploads() == uploads  # no second upload
    assert harness.texts()[0] == "Oferta"


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (OutboundMessage(MessageKind.TEXT, "x" * 4097), "text is 4097 characters"),
        (OutboundMessage(MessageKind.TEXT, "😀" * 2049), "text is 4098 characters"),
        (OutboundMessage(MessageKind.TEXT, "   "), "text is empty"),
        (
            OutboundMessage(MessageKind.PHOTO, "c" * 1025, Media(url="https://x/y.png")),
            "caption is 1025 characters",
        ),
    ],
)
def test_over_limit_messages_are_refused_before_any_request(
    harness: Harness, message: OutboundMessage, problem: str
) -> None:
    outcome = harness.channel.send(CHAT, message, OPEN)
    assert isinstance(outcome, Failed)
    assert outcome.reason == "invalid_message"
    assert problem in outcome.detail
    assert harness.texts() == []


def test_chat_action_never_fails(harness: Harness) -> None:
    assert not isinstance(harness.channel.chat_action(CHAT, "typing"), Failed)


def test_delete_outcome_is_a_value(harness: Harness) -> None:
    sent = harness.channel.send(CHAT, OutboundMessage(MessageKind.TEXT, "some"), OPEN)
    assert isinstance(sent, Sent)
    outcome = harness.channel.delete(CHAT, sent.message_id, NOW, NOW + timedelta(minutes=5))
    assert isinstance(outcome, Sent | Skipped)


def test_template_is_sent_where_the_platform_has_templates(harness: Harness) -> None:
    message = OutboundMessage(
        MessageKind.TEMPLATE, template=Template("volte_sempre", "pt_BR", ("Ana",))
    )
    outcome = harness.channel.send(CHAT, message, SendContext(NOW))
    if isinstance(harness.channel, TelegramChannel):
        assert outcome == Skipped("unsupported")
    else:
        assert isinstance(outcome, Sent)
