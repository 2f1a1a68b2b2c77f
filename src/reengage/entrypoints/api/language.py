"""Which language an API error is written in: the organization's when the caller sent a valid
API key, else the first of `Accept-Language` we speak, else pt-BR.

Only failed requests ask, and the answer is kept in memory per key (a minute, a bounded
number of keys, unknown keys included): the hot path never pays for it, and a client
repeating a bad request costs one database read a minute."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from reengage import i18n
from reengage.adapters.crypto import hash_api_key
from reengage.adapters.db.models import ApiKey, Organization
from reengage.entrypoints.api.hot_paths import api_key_of, header_of


class KeyLanguages:
    """The language of the organization behind each API key, from memory when it can."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        max_age: float = 60.0,
        size: int = 10_000,
        tick: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._max_age = max_age
        self._size = size
        self._tick = tick
        self._held: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def held(self, key: str) -> tuple[bool, str | None]:
        """(known, language) from memory alone; the language is None for an unknown key."""
        found = self._held.get(hash_api_key(key))
        if found is None or self._tick() - found[1] >= self._max_age:
            return False, None
        return True, found[0]

    def read(self, key: str) -> str | None:
        """The language of the key's organization (None: no such key), read and kept."""
        digest = hash_api_key(key)
        with self._sessions() as session:
            stored = session.scalar(
                select(Organization.language)  # unscoped: the key names its organization
                .join(ApiKey, ApiKey.org_id == Organization.id)
                .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            )
        language = i18n.language(stored) if stored is not None else None
        with self._lock:
            if len(self._held) >= self._size:
                self._held.pop(next(iter(self._held)))  # the oldest entry
            self._held[digest] = (language, self._tick())
        return language


def _key_languages(scope: Scope) -> KeyLanguages | None:
    state = scope["app"].state if "app" in scope else None
    runtime = getattr(state, "runtime", None)
    if state is None or runtime is None:
        return None
    languages: KeyLanguages | None = getattr(state, "key_languages", None)
    if languages is None:
        languages = state.key_languages = KeyLanguages(runtime.sessions)
    return languages


async def language_of(scope: Scope, *, read: bool = True) -> str:
    """The language to answer this request's error in. With `read=False`, memory only (when
    the database itself may be what failed)."""
    key = api_key_of(scope)
    languages = _key_languages(scope) if key else None
    if key and languages is not None:
        known, language = languages.held(key)
        if not known and read:
            try:
                language = await run_in_threadpool(languages.read, key)
            except Exception:  # the error being answered matters more than its language
                language = None
        if language is not None:
            return language
    return i18n.negotiate(header_of(scope, b"accept-language"))
