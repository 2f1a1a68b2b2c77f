"""Credentials out of text: whatever is logged or printed goes through `redact` first."""

from __future__ import annotations

import re

_SECRETS = (
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@", re.IGNORECASE), r"\1***@"),
    (re.compile(r"(/bot\d+:)[A-Za-z0-9_-]+"), r"\1***"),
    (re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1***"),
    (re.compile(r"((?:access_token|secret|password|token)=)[^&\s'\"]+", re.IGNORECASE), r"\1***"),
)


def redact(text: str) -> str:
    """`text` with credentials in URLs, bot tokens and bearer tokens replaced by ***."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text
