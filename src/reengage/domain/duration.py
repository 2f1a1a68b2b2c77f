"""Human durations: `50ms`, `45s`, `30m`, `2h`, `1d12h`, plain seconds, or ISO 8601 (`PT10M`)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_COMPACT = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_ISO = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raise ValueError naming the input when it is not one."""
    value = text.strip().lower().replace(" ", "")
    if value.isdigit():
        return timedelta(seconds=int(value))
    if value.endswith("ms") and value[:-2].isdigit():
        return timedelta(milliseconds=int(value[:-2]))
    for pattern in (_COMPACT, _ISO):
        match = pattern.fullmatch(value.upper() if pattern is _ISO else value)
        if match and any(match.groups()):
            days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
            return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise ValueError(f"invalid duration {text!r}: use e.g. 30m, 2h, 1d12h or seconds")


def format_duration(delta: timedelta) -> str:
    """The compact form of a duration (`1d12h`), the inverse of `parse_duration`."""
    total = int(delta.total_seconds())
    if total == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        amount, total = divmod(total, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
