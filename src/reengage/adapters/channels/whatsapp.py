"""The WhatsApp Cloud API channel (Graph API `/{phone-number-id}/messages`), over httpx.

Outside the 24-hour customer-service window only templates are sent: anything else is
`Skipped("window_closed")` without a request, and error 131047 maps to the same outcome.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import httpx

from reengage.adapters.pacing import Pacer, take_slot
from reengage.domain.activity import ChannelKind
from reengage.domain.outbound import (
    Failed,
    Media,
    MessageKind,
    OutboundMessage,
    SendContext,
    SendOutcome,
    Sent,
    Skipped,
    Superseded,
    decide_delete,
    decide_window,
    message_problems,
)
from reengage.metrics import http_error_kind, pacing_hold, platform_error

GRAPH_API = "https://graph.facebook.com"
GRAPH_VERSION = "v21.0"

# Graph error codes (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes)
WINDOW_CLOSED = {131047}
RATE_LIMITED = {4, 80007, 130429, 131048, 131056}
UNREACHABLE = {131026}  # not a WhatsApp user, or cannot receive this message
AUTH = {0, 190, 10, 200}
TEMPORARY = {1, 2, 131000, 131016}  # unknown / temporarily unavailable / service unavailable
# The connection was never made: the request surely did not reach the Graph API.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# One HTTP client (keep-alive connections) per API base and token, per process.
_clients: dict[tuple[str, str, float], httpx.Client] = {}
_clients_lock = threading.Lock()


def _client(api_base: str, token: str, timeout: float) -> httpx.Client:
    key = (api_base, token, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None or client.is_closed:
            headers = {"Authorization": f"Bearer {token}"}
            client = _clients[key] = httpx.Client(timeout=timeout, headers=headers)
        return client


def close_clients() -> None:
    """Close the kept-alive connections (at shutdown, and between tests)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


def _transport_error(exc: httpx.TransportError) -> None:
    platform_error("whatsapp", "timeout" if isinstance(exc, httpx.TimeoutException) else "network")


def _accepted(response: httpx.Response, file_id: str | None) -> SendOutcome:
    """A 2xx: the message id, or ambiguous when the answer does not say it (it may be out)."""
    try:
        message_id = response.json()["messages"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return Failed("ambiguous", False, detail=f"HTTP {response.status_code}: unreadable")
    return Sent(str(message_id), file_id)


_MEDIA_TYPES = {
    MessageKind.PHOTO: "image",
    MessageKind.VIDEO: "video",
    MessageKind.AUDIO: "audio",
    MessageKind.DOCUMENT: "document",
    MessageKind.ANIMATION: "video",  # WhatsApp has no animation type: GIFs go as MP4 video
}


def check_number(
    phone_number_id: str,
    access_token: str,
    api_base: str = GRAPH_API,
    version: str = GRAPH_VERSION,
    timeout: float = 10.0,
) -> str:
    """The number as WhatsApp shows it when the Graph API accepts the token for it (the
    phone-number lookup); ValueError saying why not."""
    url = f"{api_base.rstrip('/')}/{version}/{phone_number_id}"
    try:
        response = httpx.get(
            url,
            params={"fields": "display_phone_number,verified_name"},
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout,
        )
    except httpx.TransportError as exc:
        raise ValueError(f"WhatsApp did not answer: {type(exc).__name__}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict):
        return str(body.get("display_phone_number") or phone_number_id)
    error = body.get("error") if isinstance(body, dict) else None
    detail = error.get("message") if isinstance(error, dict) else f"HTTP {response.status_code}"
    raise ValueError(f"WhatsApp refused the number or token: {detail}")


@dataclass(frozen=True, slots=True)
class WhatsAppLimits:
    per_number: float = 80.0  # messages/s per phone number (Cloud API default)
    backoff: float = 4.0  # seconds suggested to the caller after a rate-limit error
    defer_over: float = 0.25  # a longer pacing wait is handed back when the caller allows it


class WhatsAppChannel:
    def __init__(
        self,
        phone_number_id: str,
        access_token: str,
        *,
        pacer: Pacer,
        api_base: str = GRAPH_API,
        version: str = GRAPH_VERSION,
        limits: WhatsAppLimits = WhatsAppLimits(),  # noqa: B008
        timeout: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        bot_key: str | None = None,
    ) -> None:
        self._number = phone_number_id
        self._bot_key = bot_key or phone_number_id
        self._base = f"{api_base.rstrip('/')}/{version}/{phone_number_id}"
        self._http = _client(api_base, access_token, timeout)
        self._pacer = pacer
        self._limits = limits
        self._sleep = sleep

    def send(self, chat_id: str, message: OutboundMessage, context: SendContext) -> SendOutcome:
        problems = message_problems(message)
        if problems:
            return Failed("invalid_message", False, detail="; ".join(problems))
        closed = decide_window(ChannelKind.WHATSAPP, message, context)
        if closed:
            return closed
        slot = take_slot(
            self._pacer,
            gaps=[],
            rates=[(f"{{pace:wa:{self._number}}}:number", self._limits.per_number)],
            held=context.slot_at,
            defer_over=self._limits.defer_over if context.may_defer else None,
            sleep=self._sleep_for_slot,
        )
        if slot is not None:
            pacing_hold("whatsapp", self._bot_key, "handed_back")
            return Failed("paced", True, slot.wait, "waiting for its send slot", slot.at)
        try:
            body, file_id = self._body(self._http, chat_id, message)
        except httpx.TransportError as exc:  # an upload, before the message itself
            _transport_error(exc)
            return Failed("upload_failed", True, detail=f"{type(exc).__name__}: {exc}")
        if isinstance(body, Failed):
            return body
        if context.on_request is not None and not context.on_request():
            return Superseded()
        try:
            response = self._http.post(f"{self._base}/messages", json=body)
        except NOT_SENT as exc:  # no connection was made: nothing reached Meta
            _transport_error(exc)
            return Failed("connect_failed", True, detail=f"{type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:  # it may have reached Meta
            _transport_error(exc)
            return Failed("ambiguous", False, detail=f"{type(exc).__name__}: {exc}")
        if response.is_success:
            return _accepted(response, file_id)
        return self._refusal(response)

    def _sleep_for_slot(self, seconds: float) -> None:
        pacing_hold("whatsapp", self._bot_key, "slept")
        self._sleep(seconds)

    def _body(
        self, http: httpx.Client, to: str, message: OutboundMessage
    ) -> tuple[dict[str, Any] | Failed, str | None]:
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
        }
        if message.kind is MessageKind.TEXT:
            body |= {"type": "text", "text": {"body": message.text, "preview_url": False}}
            return body, None
        if message.kind is MessageKind.TEMPLATE:
            assert message.template is not None
            t = message.template
            template: dict[str, Any] = {"name": t.name, "language": {"code": t.language}}
            if t.parameters:
                params = [{"type": "text", "text": p} for p in t.parameters]
                template["components"] = [{"type": "body", "parameters": params}]
            return body | {"type": "template", "template": template}, None
        assert message.media is not None
        kind = _MEDIA_TYPES[message.kind]
        ref = self._media_ref(http, kind, message.media)
        if isinstance(ref, Failed):
            return ref, None
        if message.text and kind != "audio":
            ref["caption"] = message.text
        return body | {"type": kind, kind: ref}, ref.get("id")

    def _media_ref(self, http: httpx.Client, kind: str, media: Media) -> dict[str, Any] | Failed:
        """By cached media id, by link, or uploaded now (once; the caller caches the id)."""
        if media.file_id:
            return {"id": media.file_id}
        if media.url:
            return {"link": media.url}
        if media.content is None and media.path is None:
            return Failed("invalid_message", False, detail="media has no content")
        with ExitStack() as files:
            content: bytes | BinaryIO = (
                files.enter_context(open(media.path, "rb"))
                if media.path is not None
                else media.content or b""
            )
            response = http.post(  # a file is streamed in chunks
                f"{self._base}/media",
                data={"messaging_product": "whatsapp", "type": media.content_type},
                files={"file": (media.filename, content, media.content_type)},
            )
        if not response.is_success:
            refusal = self._refusal(response)
            return refusal if isinstance(refusal, Failed) else Failed("upload_failed", False)
        try:
            return {"id": str(response.json()["id"])}
        except (ValueError, KeyError, TypeError):
            return Failed("upload_failed", True, detail=f"unreadable answer: {response.text[:200]}")

    def _refusal(self, response: httpx.Response) -> SendOutcome:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        error = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(error, dict):
            error = {}
        code = error.get("code")
        detail = f"{code}: {error.get('message', response.text[:200])}"
        if code in WINDOW_CLOSED:
            return Skipped("window_closed")
        if code in RATE_LIMITED or response.status_code == 429:
            platform_error("whatsapp", "rate_limited")
            return Failed("rate_limited", True, self._limits.backoff, detail)
        platform_error("whatsapp", http_error_kind(response.status_code))
        if code in UNREACHABLE:
            return Failed("undeliverable", False, detail=detail)
        if code in AUTH or response.status_code in (401, 403):
            return Failed("unauthorized", False, detail=detail)
        if response.status_code >= 500 or code in TEMPORARY:
            # Graph answered that it could not take the message: try again later.
            return Failed("server_error", True, detail=f"HTTP {response.status_code}: {detail}")
        return Failed("bad_request", False, detail=detail)

    def delete(
        self, chat_id: str, message_id: str, sent_at: datetime, now: datetime
    ) -> SendOutcome:
        return decide_delete(ChannelKind.WHATSAPP, sent_at, now) or Skipped("unsupported")

    def chat_action(self, chat_id: str, action: str) -> SendOutcome:
        # The Cloud API has no free-standing typing indicator.
        return Skipped("unsupported")
