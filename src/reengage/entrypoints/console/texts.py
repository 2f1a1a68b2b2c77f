"""The console's texts: pt-BR by default, English per browser (the language switch).

They live in the message catalogue (`reengage.i18n`), each under its key as context
(`msgctxt "console:overview"`). `_TEXTS` only holds entries not moved there yet, in the old
`"key": ("pt-BR", "English")` form: `scripts/i18n_import_tuples.py` moves them, and a test
keeps it empty."""

from __future__ import annotations

from typing import Any

from reengage import i18n

LANGUAGES = i18n.LANGUAGES
SCOPE = "console"

_TEXTS: dict[str, tuple[str, str]] = {}


def text(language: str, key: str, /, **values: Any) -> str:
    """The text `key` in `language` (pt-BR when it is not one of ours)."""
    pair = _TEXTS.get(key)
    if pair is None:
        return i18n.keyed(SCOPE, key, language, **values)
    chosen = pair[1] if language == "en" else pair[0]
    return chosen.format(**values) if values else chosen


def keys() -> set[str]:
    return i18n.keys(SCOPE) | set(_TEXTS)
