"""Secrets at rest: bot credentials encrypted with a key derived from the secret key."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"reengage/credentials\x00" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_json(secret_key: str, value: dict[str, Any]) -> bytes:
    return _fernet(secret_key).encrypt(json.dumps(value, sort_keys=True).encode())


def decrypt_json(secret_key: str, blob: bytes) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(_fernet(secret_key).decrypt(blob))
    except InvalidToken as exc:
        raise ValueError("credentials cannot be decrypted with this secret key") from exc
    return data


def new_api_key() -> tuple[str, str, str]:
    """A fresh API key: (plaintext, display prefix, sha256 hex to store)."""
    prefix = secrets.token_hex(4)
    plaintext = f"rg_{prefix}_{secrets.token_urlsafe(32)}"
    return plaintext, prefix, hash_api_key(plaintext)


def hash_api_key(plaintext: str) -> str:
    # Keys carry 256 bits of entropy: a plain digest is enough and allows an indexed lookup.
    return hashlib.sha256(plaintext.encode()).hexdigest()
