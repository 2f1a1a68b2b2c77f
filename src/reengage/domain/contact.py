"""What reengage learns about a contact from their messages: zone and language."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones

# Instants across a year and its DST changes: zones that agree on all of them are one zone.
_PROBES = [datetime(2026, month, 15, 12, tzinfo=UTC) for month in range(1, 13)]


def valid_zone(name: str) -> bool:
    """An IANA zone name this machine knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone_from_phone(number: str) -> str | None:
    """The IANA zone of a phone number (a WhatsApp id is one, in digits) when it has only
    one: São Paulo for +55 11, Manaus for +55 92, none for Portugal (Lisbon or the Azores).
    Zones that keep the same offsets all year count as one (London, Jersey)."""
    try:
        parsed = phonenumbers.parse("+" + number.lstrip("+"))
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    zones = [z for z in phone_zones.time_zones_for_number(parsed) if valid_zone(z)]
    if not zones:
        return None
    offsets = {tuple(probe.astimezone(ZoneInfo(z)).utcoffset() for probe in _PROBES) for z in zones}
    return zones[0] if len(offsets) == 1 else None


def language_tag(code: str | None) -> str | None:
    """A platform's language code (Telegram's `language_code`: `pt-br`, `en`) as one of
    ours, or None when it is neither."""
    if not code:
        return None
    base = code.replace("_", "-").split("-")[0].lower()
    return {"pt": "pt-BR", "en": "en"}.get(base)
