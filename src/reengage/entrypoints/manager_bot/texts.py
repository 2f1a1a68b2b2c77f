"""The manager bot's texts: pt-BR by default, English per admin.

They live in the message catalogue (`reengage.i18n`), each under its key as context
(`msgctxt "manager_bot:menu"`). `_TEXTS` only holds entries not moved there yet, in the old
`"key": ("pt-BR", "English")` form: `scripts/i18n_import_tuples.py` moves them, and a test
keeps it empty."""

from __future__ import annotations

from typing import Any

from reengage import i18n

DEFAULT = i18n.DEFAULT
SCOPE = "manager_bot"

_TEXTS: dict[str, tuple[str, str]] = {}


def t(language: str, key: str, /, **values: Any) -> str:
    """The text `key` in the admin's language, with `values` filled in."""
    pair = _TEXTS.get(key)
    if pair is None:
        return i18n.keyed(SCOPE, key, language, **values)
    pt, en = pair
    return (en if language == "en" else pt).format(**values)


def keys() -> set[str]:
    return i18n.keys(SCOPE) | set(_TEXTS)
