"""The WhatsApp Cloud API wire format: Graph errors, request validation, webhook payloads.

Webhook payloads: `{"object": "whatsapp_business_account", "entry": [{"id": <WABA id>, "changes":
[{"value": {"messaging_product": "whatsapp", "metadata": {...}, ...}, "field": "messages"}]}]}`
with `contacts` + `messages` for inbound messages and `statuses` for delivery receipts.
`signature` computes the `X-Hub-Signature-256` header Meta sends with them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.responses import JSONResponse

DEFAULT_WABA_ID = "102290129340398"
DEFAULT_DISPLAY_NUMBER = "15550783881"
ERROR_CODES_URL = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

# code: (title, details, HTTP status of a synchronous refusal)
KNOWN_ERRORS: dict[int, tuple[str, str, int]] = {
    130429: ("Rate limit hit", "Cloud API message throughput has been reached.", 400),
    131000: ("Something went wrong", "Message failed to send due to an unknown error.", 500),
    131026: (
        "Message undeliverable",
        "Unable to deliver message. Reasons can include: the recipient phone number is not a "
        "WhatsApp phone number; the recipient has not accepted WhatsApp's new Terms of Service "
        "and Privacy Policy; the recipient is using an old WhatsApp version.",
        400,
    ),
    131047: (
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
        400,
    ),
    131048: (
        "Spam rate limit hit",
        "Message failed to send because there are restrictions on how many messages can be sent "
        "from this phone number.",
        400,
    ),
    131051: ("Unsupported message type", "Message type is not currently supported.", 400),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone "
        "number to the same phone number in a short period of time.",
        400,
    ),
    132001: (
        "Template does not exist",
        "The template does not exist in the specified language or the template has not been "
        "approved.",
        404,
    ),
}


MAX_TEXT = 4096
MAX_CAPTION = 1024
MESSAGE_TYPES = (
    "audio",
    "contacts",
    "document",
    "image",
    "interactive",
    "location",
    "reaction",
    "sticker",
    "template",
    "text",
    "video",
)
MEDIA_LIMITS = {  # uploads: supported MIME types and size limit per media category
    "audio": ({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}, 16 << 20),
    "document": (
        {
            "text/plain",
            "application/pdf",
            "application/msword",
            "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        },
        100 << 20,
    ),
    "image": ({"image/jpeg", "image/png"}, 5 << 20),
    "sticker": ({"image/webp"}, 500 << 10),
    "video": ({"video/mp4", "video/3gpp"}, 16 << 20),
}


class GraphError(Exception):
    """A Graph API refusal: `{"error": {"message", "type", "code", "error_data", ...}}`."""

    def __init__(
        self,
        code: int,
        message: str,
        details: str = "",
        *,
        http_status: int = 400,
        subcode: int | None = None,
        type_: str = "OAuthException",
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details
        self.http_status, self.subcode, self.type = http_status, subcode, type_

    @classmethod
    def known(cls, code: int) -> GraphError:
        """A documented error as a synchronous answer: message "(#code) title"."""
        title, details, http_status = KNOWN_ERRORS[code]
        return cls(code, f"(#{code}) {title}", details, http_status=http_status)

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.details:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
        return JSONResponse({"error": error}, status_code=self.http_status)


def invalid(details: str, code: int = 100) -> GraphError:
    title = "Invalid parameter" if code == 100 else "Parameter value is not valid"
    return GraphError(code, f"(#{code}) {title}", details)


def required(name: str) -> GraphError:
    return GraphError(100, f"(#100) The parameter {name} is required.")


def wa_id_of(number: str) -> str:
    """The WhatsApp id of a phone number as written: its digits."""
    return "".join(ch for ch in str(number) if ch.isdigit())


def new_wamid(wa_id: str, serial: int) -> str:
    """A message id shaped like Meta's ("wamid.HBgL...")."""
    raw = b"\x1c\x18" + bytes([len(wa_id) % 256]) + wa_id.encode() + b"\x15\x02\x00\x11\x18\x12"
    raw += f"{serial:06X}{secrets.token_hex(6).upper()}".encode() + b"\x00"
    return "wamid." + base64.b64encode(raw).decode()


def validate_message(kind: str, part: Any, media_exists: Callable[[str], bool]) -> None:
    """Check the `body[type]` object of a /messages request as the Cloud API does."""
    if not isinstance(part, dict):
        raise required(kind)
    if kind == "text":
        text = part.get("body")
        if not isinstance(text, str) or not text:
            raise required("text['body']")
        if len(text) > MAX_TEXT:
            raise invalid(f"Param text['body'] must be at most {MAX_TEXT} characters long.")
    elif kind in MEDIA_LIMITS:
        _validate_media(kind, part, media_exists)
    elif kind == "template":
        if not part.get("name"):
            raise required("template['name']")
        if not isinstance(part.get("language"), dict) or not part["language"].get("code"):
            raise required("template['language']['code']")
    elif kind == "interactive" and not part.get("type"):
        raise required("interactive['type']")


def _validate_media(kind: str, part: dict[str, Any], media_exists: Callable[[str], bool]) -> None:
    media_id, link = part.get("id"), part.get("link")
    if (media_id is None) == (link is None):
        raise invalid(f"Param {kind} must contain exactly one of the keys {{id, link}}.")
    if media_id is not None and not media_exists(str(media_id)):
        details = f"Param {kind}['id'] is not a valid whatsapp business account media attachment ID"
        raise invalid(details, 131009)
    if link is not None and not str(link).startswith(("http://", "https://")):
        raise invalid(f"Param {kind}['link'] is not a valid URI.", 131009)
    caption = part.get("caption")
    if caption is not None and kind in ("audio", "sticker"):
        raise invalid(f"Param {kind}['caption'] is not a valid parameter.")
    if caption is not None and len(str(caption)) > MAX_CAPTION:
        raise invalid(f"Param {kind}['caption'] must be at most {MAX_CAPTION} characters long.")


def check_upload(mime: str, size: int) -> None:
    """Refuse an unsupported MIME type or an oversized file, as POST /media does."""
    category = next((c for c, (types, _) in MEDIA_LIMITS.items() if mime in types), None)
    if category is None:
        supported = ", ".join(sorted(t for types, _ in MEDIA_LIMITS.values() for t in types))
        msg = f"(#100) Param file must be a file with one of the following types: {supported}"
        raise GraphError(100, msg)
    limit = MEDIA_LIMITS[category][1]
    if size > limit:
        details = f"File size exceeds the {limit} bytes limit for {category}."
        raise GraphError(131053, "(#131053) Media upload error", details)


def timestamp_str(value: datetime | int | float | str) -> str:
    """Unix seconds as a string, as in every webhook payload."""
    if isinstance(value, datetime):
        return str(int(value.timestamp()))
    return str(int(value)) if not isinstance(value, str) else value


def envelope(
    phone_number_id: str,
    display_phone_number: str,
    value: dict[str, Any],
    *,
    waba_id: str = DEFAULT_WABA_ID,
) -> dict[str, Any]:
    """The `whatsapp_business_account` notification around one `messages` change value."""
    metadata = {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id}
    change_value = {"messaging_product": "whatsapp", "metadata": metadata, **value}
    change: dict[str, Any] = {"value": change_value, "field": "messages"}
    return {"object": "whatsapp_business_account", "entry": [{"id": waba_id, "changes": [change]}]}


def inbound_payload(
    phone_number_id: str,
    display_phone_number: str,
    wa_id: str,
    message: dict[str, Any],
    *,
    profile_name: str = "Test User",
    waba_id: str = DEFAULT_WABA_ID,
) -> dict[str, Any]:
    """A user's message of any type (`message` holds id, timestamp, type and its object)."""
    contacts = [{"profile": {"name": profile_name}, "wa_id": wa_id}]
    value = {"contacts": contacts, "messages": [{"from": wa_id, **message}]}
    return envelope(phone_number_id, display_phone_number, value, waba_id=waba_id)


def inbound_text_payload(
    phone_number_id: str,
    display_phone_number: str,
    wa_id: str,
    text: str,
    message_id: str,
    timestamp: datetime | int | str,
    profile_name: str = "Test User",
    *,
    waba_id: str = DEFAULT_WABA_ID,
) -> dict[str, Any]:
    """A user's text message, as in Meta's "Text Messages" webhook example."""
    message = {
        "from": wa_id,
        "id": message_id,
        "timestamp": timestamp_str(timestamp),
        "text": {"body": text},
        "type": "text",
    }
    return inbound_payload(
        phone_number_id,
        display_phone_number,
        wa_id,
        message,
        profile_name=profile_name,
        waba_id=waba_id,
    )


def status_error(code: int, details: str | None = None) -> dict[str, Any]:
    """One entry of `statuses[].errors` for a failed message (codes of `KNOWN_ERRORS`)."""
    title, default, _ = KNOWN_ERRORS[code]
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details or default},
        "href": ERROR_CODES_URL,
    }


def status_payload(
    phone_number_id: str,
    message_id: str,
    status: str,
    recipient_id: str,
    timestamp: datetime | int | str,
    errors: list[dict[str, Any]] | None = None,
    *,
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
    waba_id: str = DEFAULT_WABA_ID,
    category: str = "service",
    pricing_model: str = "PMP",
    conversation_id: str | None = None,
) -> dict[str, Any]:
    """A status update ("sent", "delivered", "read" or "failed") of a business message.

    sent/delivered carry `conversation` (sent also its `expiration_timestamp`) and `pricing`;
    read carries neither; failed carries `errors` (131000 unless given).
    """
    if status not in ("sent", "delivered", "read", "failed"):
        msg = f"status must be sent, delivered, read or failed, not {status!r}"
        raise ValueError(msg)
    ts = timestamp_str(timestamp)
    entry: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "timestamp": ts,
        "recipient_id": recipient_id,
    }
    if status in ("sent", "delivered"):
        conversation: dict[str, Any] = {"id": conversation_id or secrets.token_hex(16)}
        if status == "sent":
            conversation["expiration_timestamp"] = str(int(ts) + 24 * 3600)
        conversation["origin"] = {"type": category}
        entry["conversation"] = conversation
        pricing: dict[str, Any] = {"billable": True, "pricing_model": pricing_model}
        if pricing_model == "PMP":
            free = category == "service"
            pricing |= {
                "billable": not free,
                "type": "free_customer_service" if free else "regular",
            }
        entry["pricing"] = pricing | {"category": category}
    if status == "failed" or errors:
        entry["errors"] = errors or [status_error(131000)]
    value = {"statuses": [entry]}
    return envelope(phone_number_id, display_phone_number, value, waba_id=waba_id)


def signature(app_secret: str | bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` header value for a webhook `body` ("sha256=<hex>")."""
    secret = app_secret.encode() if isinstance(app_secret, str) else app_secret
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
