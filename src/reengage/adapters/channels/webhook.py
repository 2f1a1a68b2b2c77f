"""The generic webhook channel: reengage POSTs each message, signed, to the bot's URL.

Any platform can receive reengage's messages and check them with a Standard Webhooks
library. The receiver answers 2xx (optionally `{"message_id": "..."}`), 410 when the user is
gone for good, 429/503 to be retried later.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

import httpx

from reengage.adapters.channels import standard_webhooks
from reengage.domain.outbound import (
    Blocked,
    Failed,
    OutboundMessage,
    SendContext,
    SendOutcome,
    Sent,
    message_problems,
)


class WebhookChannel:
    def __init__(self, url: str, secret: str, *, timeout: float = 15.0) -> None:
        self._url = url
        self._secret = secret
        self._timeout = timeout

    def _post(self, payload: dict[str, Any]) -> SendOutcome:
        msg_id = f"msg_{uuid.uuid4().hex}"
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = standard_webhooks.headers(self._secret, msg_id, body)
        head["content-type"] = "application/json"
        try:
            response = httpx.post(self._url, content=body, headers=head, timeout=self._timeout)
        except httpx.ConnectError as exc:
            return Failed("unreachable", True, detail=str(exc))  # nothing was delivered
        except httpx.TransportError as exc:
            return Failed("ambiguous", False, detail=str(exc))
        if response.is_success:
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            got = answer.get("message_id") if isinstance(answer, dict) else None
            return Sent(str(got or msg_id))
        detail = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code == 410:
            return Blocked(detail)
        if response.status_code in (429, 503):
            after = response.headers.get("retry-after", "")
            return Failed("rate_limited", True, float(after) if after.isdigit() else None, detail)
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
                "content_base64": base64.b64encode(media.content).decode()
                if media.content and not media.url
                else None,
            },
            "template": None
            if message.template is None
            else {
                "name": message.template.name,
                "language": message.template.language,
                "parameters": list(message.template.parameters),
            },
        }
        return self._post(payload)

    def delete(
        self, chat_id: str, message_id: str, sent_at: datetime, now: datetime
    ) -> SendOutcome:
        return self._post({"type": "message.delete", "chat_id": chat_id, "message_id": message_id})

    def chat_action(self, chat_id: str, action: str) -> SendOutcome:
        return self._post({"type": "chat.action", "chat_id": chat_id, "action": action})
