"""Secrets at rest: bot credentials encrypted with a key derived from the secret key.

Several secret keys may be given, newest first (`REENGAGE_SECRET_KEY=new,old`): the newest
encrypts, any of them decrypts (Fernet's MultiFernet), and `rotate` re-encrypts a stored value
with the newest, so that the old key can then be dropped."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"reengage/credentials\x00" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class Credentials:
    """Bots' credentials, decrypted in this one place and kept per bot. The cache is keyed by
    the stored ciphertext, so a changed token (any new encryption) is decrypted afresh, in
    every process, the first time it is read."""

    def __init__(self, secret_keys: str | Sequence[str], size: int = 10_000) -> None:
        keys = [secret_keys] if isinstance(secret_keys, str) else list(secret_keys)
        if not keys:
            raise ValueError("at least one secret key is needed")
        self._newest = _fernet(keys[0])
        self._fernet = MultiFernet([_fernet(k) for k in keys])
        self._size = size
        self._kept: OrderedDict[int, tuple[bytes, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.decryptions = 0

    def encrypt(self, value: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(value, sort_keys=True).encode())

    def rotate(self, blob: bytes) -> bytes | None:
        """`blob` encrypted with the newest key, or None when it already is."""
        blob = bytes(blob)
        try:
            self._newest.decrypt(blob)
        except InvalidToken:
            pass
        else:
            return None
        try:
            return self._fernet.rotate(blob)
        except InvalidToken as exc:
            raise ValueError("credentials cannot be decrypted with any secret key") from exc

    def decrypt(self, blob: bytes) -> dict[str, Any]:
        """A value encrypted by `encrypt` (not kept: for the rare secrets read once a send)."""
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(bytes(blob)))
        except InvalidToken as exc:
            raise ValueError("a secret cannot be decrypted with this secret key") from exc
        return data

    def of(self, bot_id: int, blob: bytes | None) -> dict[str, Any]:
        """The bot's credentials (a copy: callers may change it freely)."""
        if not blob:
            return {}
        blob = bytes(blob)
        with self._lock:
            kept = self._kept.get(bot_id)
            if kept is not None and kept[0] == blob:
                self._kept.move_to_end(bot_id)
                return dict(kept[1])
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(blob))
        except InvalidToken as exc:
            raise ValueError("credentials cannot be decrypted with this secret key") from exc
        with self._lock:
            self.decryptions += 1
            self._kept[bot_id] = (blob, data)
            self._kept.move_to_end(bot_id)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return dict(data)


def new_api_key() -> tuple[str, str, str]:
    """A fresh API key: (plaintext, display prefix, sha256 hex to store)."""
    prefix = secrets.token_hex(4)
    plaintext = f"rg_{prefix}_{secrets.token_urlsafe(32)}"
    return plaintext, prefix, hash_api_key(plaintext)


def hash_api_key(plaintext: str) -> str:
    # Keys carry 256 bits of entropy: a plain digest is enough and allows an indexed lookup.
    return hashlib.sha256(plaintext.encode()).hexdigest()
