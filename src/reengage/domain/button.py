"""Signed inline buttons: `callback_data` that only the admin it was made for can use.

`callback_data` comes back from Telegram clients unverified, so each button carries
`<prefix>:<token>`: a compact binary body (action, object id, argument, extra, expiry) and a
truncated HMAC-SHA256 over the prefix, the admin's Telegram id and the body, base64url
without padding. The admin id is bound by the MAC rather than carried, which keeps the whole
`callback_data` at 56 bytes for a nine-letter prefix (Telegram allows 64).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

TTL = timedelta(minutes=15)
MAX_CALLBACK_DATA = 64  # bytes, Telegram's limit
_BODY = struct.Struct(">BQqHI")  # action, object id, argument, extra, expiry (unix seconds)
_MAC_SIZE = 12  # 96 bits: forging one takes 2**96 tries against a 15-minute window
_TOKEN_SIZE = _BODY.size + _MAC_SIZE


@dataclass(frozen=True, slots=True)
class Button:
    """What a button does: an action code, on an object, with up to two arguments."""

    action: int
    obj: int = 0
    arg: int = 0
    extra: int = 0


@dataclass(frozen=True, slots=True)
class Refused:
    """A callback that must change nothing: `malformed`, `bad_signature` or `expired`."""

    reason: str


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _mac(key: bytes, prefix: str, admin_id: int, body: bytes) -> bytes:
    message = prefix.encode() + b":" + admin_id.to_bytes(8, "big", signed=True) + body
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_SIZE]


def sign(key: bytes, prefix: str, admin_id: int, button: Button, expires_at: datetime) -> str:
    """The `callback_data` of a button for one admin, valid until `expires_at`."""
    body = _BODY.pack(
        button.action, button.obj, button.arg, button.extra, int(expires_at.timestamp())
    )
    return f"{prefix}:{_encode(body + _mac(key, prefix, admin_id, body))}"


def verify(
    key: bytes | Sequence[bytes], data: str, admin_id: int, now: datetime
) -> tuple[str, Button] | Refused:
    """The prefix and button of `data` if this admin may press it now (MAC compared in
    constant time); otherwise why not. With several keys (newest first, while the secret key
    rotates) a button signed with any of them is accepted: one signed with the previous key
    stays usable for the rest of its 15 minutes."""
    keys = [key] if isinstance(key, bytes) else list(key)
    prefix, _, token = data.partition(":")
    if not prefix or len(token) != len(_encode(bytes(_TOKEN_SIZE))):
        return Refused("malformed")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return Refused("malformed")
    if len(raw) != _TOKEN_SIZE or _encode(raw) != token:  # one spelling per token
        return Refused("malformed")
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    if not any(hmac.compare_digest(mac, _mac(k, prefix, admin_id, body)) for k in keys):
        return Refused("bad_signature")
    action, obj, arg, extra, expiry = _BODY.unpack(body)
    if now.timestamp() >= expiry:
        return Refused("expired")
    return prefix, Button(action, obj, arg, extra)
