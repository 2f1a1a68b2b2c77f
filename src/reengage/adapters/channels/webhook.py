"""The generic webhook channel: reengage POSTs each message, signed, to the bot's URL.

Any platform can receive reengage's messages and check them with a Standard Webhooks
library. The receiver answers 2xx (optionally `{"message_id": "..."}`), 410 when the user is
gone for good, 429 or any 5xx to be retried later (`Retry-After` seconds are honoured).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from reengage.adapters.channels import standard_webhooks
from reengage.domain.outbound import (
    Blocked,
    Failed,
    Media,
    OutboundMessage,
    SendContext,
    SendOutcome,
    Sent,
    Superseded,
    message_problems,
)
from reengage.metrics import http_error_kind, platform_error

# One HTTP client (keep-alive connections) per process.
_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _http() -> httpx.Client:
    global _client
    with _client_lock:
        if _client is None or _client.is_closed:
            _client = httpx.Client()
        return _client


def close_client() -> None:
    """Close the kept-alive connections (at shutdown, and between tests)."""
    global _client
    with _client_lock:
        client, _client = _client, None
    if client is not None:
        client.close()


class WebhookChannel:
    def __init__(self, url: str, secret: str, *, timeout: float = 15.0) -> None:
        self._url = url
        self._secret = secret
        self._timeout = timeout

    def _post(self, payload: dict[str, Any], context: SendContext | None = None) -> SendOutcome:
        key = context.idempotency_key if context is not None else None
        msg_id = f"msg_{key}" if key else f"msg_{uuid.uuid4().hex}"
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = standard_webhooks.headers(self._secret, msg_id, body)
        head["content-type"] = "application/json"
        if context is not None and context.on_request is not None and not context.on_request():
            return Superseded()
        try:
            response = _http().post(self._url, content=body, headers=head, timeout=self._timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            _transport_error(exc)
            return Failed("unreachable", True, detail=str(exc))  # nothing was delivered
        except httpx.TransportError as exc:
            _transport_error(exc)
            return Failed("ambiguous", False, detail=f"{type(exc).__name__}: {exc}")
        if response.is_success:
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            got = answer.get("message_id") if isinstance(answer, dict) else None
            return Sent(str(got or msg_id))
        detail = f"HTTP {response.status_code}: {response.text[:200]}"
        platform_error("webhook", http_error_kind(response.status_code))
        if response.status_code == 410:
            return Blocked(detail)
        if response.status_code == 429 or response.status_code >= 500:
            after = response.headers.get("retry-after", "")
            reason = "rate_limited" if response.status_code == 429 else "server_error"
            return Failed(reason, True, float(after) if after.isdigit() else None, detail)
        return Failed("rejected", False, detail=detail)

    def send(self, chat_id: str, message: OutboundMessage, context: SendContext) -> SendOutcome:
        problems = message_problems(message)
        if problems:
            return Failed("invalid_message", False, detail="; ".join(problems))
        media = message.media
        payload: dict[str, Any] = {
            "type": "message.send",
            "chat_id": chat_id,
            "kind": message.kind.value,
            "text": message.text,
            "media": None
            if media is None
            else {
                "url": media.url,
                "filename": media.filename,
                "content_type": media.content_type,
                "content_base64": _base64(media) if not media.url else None,
            },
            "template": None
            if message.template is None
            else {
                "name": message.template.name,
                "language": message.template.language,
                "parameters": list(message.template.parameters),
            },
        }
        return self._post(payload, context)

    def delete(
        self, chat_id: str, message_id: str, sent_at: datetime, now: datetime
    ) -> SendOutcome:
        return self._post({"type": "message.delete", "chat_id": chat_id, "message_id": message_id})

    def chat_action(self, chat_id: str, action: str) -> SendOutcome:
        return self._post({"type": "chat.action", "chat_id": chat_id, "action": action})


def _transport_error(exc: httpx.TransportError) -> None:
    platform_error("webhook", "timeout" if isinstance(exc, httpx.TimeoutException) else "network")


def _base64(media: Media) -> str | None:
    """The file inline (the receiver gets it within the JSON body): its bytes, or the media
    store's file read whole."""
    if media.path is not None:
        return base64.b64encode(Path(media.path).read_bytes()).decode()
    return base64.b64encode(media.content).decode() if media.content else None
