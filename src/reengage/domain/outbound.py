"""Outbound messages, the platforms' limits on them, and the outcome of each send."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from reengage.domain.activity import ChannelKind

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
# Telegram refuses to delete messages older than this.
TELEGRAM_DELETE_WINDOW = timedelta(hours=48)


class MessageKind(StrEnum):
    """What a message carries."""

    TEXT = "text"
    PHOTO = "photo"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    ANIMATION = "animation"
    TEMPLATE = "template"


MEDIA_KINDS = frozenset(
    {
        MessageKind.PHOTO,
        MessageKind.VIDEO,
        MessageKind.AUDIO,
        MessageKind.DOCUMENT,
        MessageKind.ANIMATION,
    }
)


@dataclass(frozen=True, slots=True)
class Media:
    """A media file: by the platform's cached id, by URL, or as bytes (or a file) to upload
    once."""

    asset_id: int | None = None
    file_id: str | None = None
    url: str | None = None
    content: bytes | None = field(default=None, repr=False)
    filename: str = "file"
    content_type: str = "application/octet-stream"
    # Or a local file to upload once, read in chunks (the media store's).
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Template:
    """An approved WhatsApp template: the only thing sendable outside the 24-hour window."""

    name: str
    language: str = "pt_BR"
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    kind: MessageKind
    text: str | None = None  # the text of a text message, the caption of a media one
    media: Media | None = None
    template: Template | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """The platform accepted the message."""

    message_id: str
    file_id: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """Not attempted, on purpose: `window_closed`, `too_old_to_delete`, `unsupported`, ..."""

    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The platform refused or could not be reached; `retryable` when sending again is safe."""

    reason: str
    retryable: bool = False
    retry_after: float | None = None  # real seconds
    detail: str = ""
    # A pacing hand-back: the platform slot reserved for the retry (the pacer's seconds).
    slot_at: float | None = None


@dataclass(frozen=True, slots=True)
class Blocked:
    """The user blocked the bot (or is gone): stop everything for this contact."""

    detail: str = ""


@dataclass(frozen=True, slots=True)
class Superseded:
    """Not attempted: another attempt took this delivery over (its claim ran out)."""


SendOutcome = Sent | Skipped | Failed | Blocked | Superseded


@dataclass(frozen=True, slots=True)
class SendContext:
    """What a channel needs to know about the conversation to obey the platform's rules."""

    now: datetime
    window_expires_at: datetime | None = None
    # A worker that may hand a long pacing wait back (as `Failed("paced", slot_at=…)`, the
    # slot stays reserved for it) instead of sleeping through it.
    may_defer: bool = False
    # The retry of such a hand-back: its slot, already reserved, is honoured at the request.
    slot_at: float | None = None
    # Called right before the request leaves (after pacing): records that it is in flight,
    # False when this attempt no longer holds the delivery (then nothing is sent).
    on_request: Callable[[], bool] | None = field(default=None, compare=False)
    # Stable across the attempts of one delivery (platforms that deduplicate use it).
    idempotency_key: str | None = None


def utf16_length(text: str) -> int:
    """Length as Telegram and WhatsApp count it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def message_problems(message: OutboundMessage) -> list[str]:
    """Why a message cannot be sent as configured (empty when it can)."""
    problems = []
    text = message.text or ""
    if message.kind is MessageKind.TEXT:
        if not text.strip():
            problems.append("text is empty")
        elif utf16_length(text) > TEXT_LIMIT:
            problems.append(f"text is {utf16_length(text)} characters; the limit is {TEXT_LIMIT}")
    elif message.kind in MEDIA_KINDS:
        if message.media is None:
            problems.append(f"{message.kind} needs a media file")
        if utf16_length(text) > CAPTION_LIMIT:
            problems.append(
                f"caption is {utf16_length(text)} characters; the limit is {CAPTION_LIMIT}"
            )
    elif message.template is None:
        problems.append("template needs a name")
    return problems


def decide_window(
    channel: ChannelKind, message: OutboundMessage, context: SendContext
) -> Skipped | None:
    """WhatsApp: outside the 24-hour window only a template may be sent."""
    if channel is not ChannelKind.WHATSAPP or message.kind is MessageKind.TEMPLATE:
        return None
    if context.window_expires_at is None or context.now >= context.window_expires_at:
        return Skipped("window_closed")
    return None


def decide_delete(channel: ChannelKind, sent_at: datetime, now: datetime) -> Skipped | None:
    """Whether a delete may be attempted: Telegram only within 48 hours; WhatsApp never."""
    if channel is ChannelKind.TELEGRAM and now - sent_at >= TELEGRAM_DELETE_WINDOW:
        return Skipped("too_old_to_delete")
    if channel is ChannelKind.WHATSAPP:
        return Skipped("unsupported")
    return None


# What the user sees while a message is being prepared (Telegram's sendChatAction).
CHAT_ACTIONS = {
    MessageKind.PHOTO: "upload_photo",
    MessageKind.VIDEO: "upload_video",
    MessageKind.ANIMATION: "upload_video",
    MessageKind.AUDIO: "upload_voice",
    MessageKind.DOCUMENT: "upload_document",
}
# A chat action shows for at most 5 seconds, or until the bot's next message: a longer wait
# repeats it this often.
CHAT_ACTION_REPEAT = timedelta(seconds=4)


def chat_action_for(kind: MessageKind) -> str:
    """ "typing…" before a text, "sending photo…" before a photo, and so on."""
    return CHAT_ACTIONS.get(kind, "typing")


def message_to_json(message: OutboundMessage) -> dict[str, object]:
    """The stored form of a message (media by asset id or URL, never by bytes)."""
    media = message.media
    template = message.template
    return {
        "kind": message.kind.value,
        "text": message.text,
        "asset_id": media.asset_id if media else None,
        "url": media.url if media else None,
        "template": None
        if template is None
        else {
            "name": template.name,
            "language": template.language,
            "parameters": list(template.parameters),
        },
    }


def message_from_json(data: dict[str, object]) -> OutboundMessage:
    kind = MessageKind(str(data["kind"]))
    asset_id, url = data.get("asset_id"), data.get("url")
    media = None
    if kind in MEDIA_KINDS:
        media = Media(
            asset_id=int(str(asset_id)) if asset_id is not None else None,
            url=str(url) if url else None,
        )
    raw = data.get("template")
    template = None
    if isinstance(raw, dict):
        template = Template(
            str(raw["name"]),
            str(raw.get("language", "pt_BR")),
            tuple(str(p) for p in raw.get("parameters") or ()),
        )
    text = data.get("text")
    return OutboundMessage(kind, str(text) if text is not None else None, media, template)
