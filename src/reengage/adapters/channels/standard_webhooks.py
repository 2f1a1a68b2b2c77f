"""Signing and verifying webhooks the Standard Webhooks way (standardwebhooks.com).

`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`, with a `whsec_<base64>` secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

TOLERANCE = 5 * 60  # seconds either side of now


class SignatureError(ValueError):
    """The webhook's signature or timestamp does not hold."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> str:
    """Check a request; return its `webhook-id`. Raise SignatureError saying what is wrong."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(stamp)
    except ValueError as exc:
        raise SignatureError("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if abs(current - ts) > TOLERANCE:
        raise SignatureError("webhook-timestamp is too old or too new")
    expected = sign(secret, msg_id, ts, body).encode()
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected):
            return msg_id
    raise SignatureError("no signature matches")
