"""Signed buttons: only the admin they were made for, only for 15 minutes, only as signed."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from reengage.domain import button as btn

KEY = b"k" * 32
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ADMIN = 7_000_000_001
BIG = btn.Button(action=255, obj=2**64 - 1, arg=-(2**63), extra=65535)


def signed(button: btn.Button = BIG, prefix: str = "recovery", admin: int = ADMIN) -> str:
    return btn.sign(KEY, prefix, admin, button, NOW + btn.TTL)


def test_a_signed_button_comes_back_whole() -> None:
    assert btn.verify(KEY, signed(), ADMIN, NOW) == ("recovery", BIG)
    assert btn.verify(KEY, signed(), ADMIN, NOW + btn.TTL - timedelta(seconds=1)) == (
        "recovery",
        BIG,
    )


def test_the_largest_values_fit_telegrams_64_bytes() -> None:
    data = signed(prefix="timeouts")
    assert len(data.encode()) <= btn.MAX_CALLBACK_DATA
    assert len(signed().encode()) == 56


def _flip(data: str, index: int) -> str:
    prefix, token = data.split(":")
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 0x01
    return f"{prefix}:{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    ("data", "admin", "now", "reason"),
    [
        (signed(), ADMIN + 1, NOW, "bad_signature"),  # another admin's button
        (signed(), ADMIN, NOW + btn.TTL, "expired"),
        (signed(), ADMIN, NOW + timedelta(days=1), "expired"),  # replayed after expiry
        (_flip(signed(), 1), ADMIN, NOW, "bad_signature"),  # the object id changed
        (_flip(signed(), 22), ADMIN, NOW, "bad_signature"),  # the expiry pushed
        (_flip(signed(), 30), ADMIN, NOW, "bad_signature"),  # the MAC changed
        ("timeouts:" + signed().split(":")[1], ADMIN, NOW, "bad_signature"),  # other feature
        (
            btn.sign(b"other-key", "recovery", ADMIN, BIG, NOW + btn.TTL),
            ADMIN,
            NOW,
            "bad_signature",
        ),
        ("recovery:" + "A" * 47, ADMIN, NOW, "bad_signature"),  # forged
        ("recovery:" + "!" * 47, ADMIN, NOW, "malformed"),
        ("recovery:short", ADMIN, NOW, "malformed"),
        ("recovery", ADMIN, NOW, "malformed"),
        ("", ADMIN, NOW, "malformed"),
        (signed() + "A", ADMIN, NOW, "malformed"),
    ],
)
def test_anything_else_is_refused_with_a_reason(
    data: str, admin: int, now: datetime, reason: str
) -> None:
    assert btn.verify(KEY, data, admin, now) == btn.Refused(reason)


def test_a_non_canonical_spelling_is_refused() -> None:
    data = signed()
    prefix, token = data.split(":")
    # 35 bytes use 47 characters; the last one carries 2 unused bits that must be zero.
    last = token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    assert btn.verify(KEY, f"{prefix}:{token[:-1]}{twin}", ADMIN, NOW) == btn.Refused("malformed")


OLD = b"o" * 32


def test_a_button_signed_with_the_previous_key_works_for_its_15_minutes() -> None:
    """While the secret key rotates (REENGAGE_SECRET_KEY=new,old) a button the manager bot
    showed before the change still works, until it expires; a third key's does not."""
    before = btn.sign(OLD, "recovery", ADMIN, BIG, NOW + btn.TTL)
    assert btn.verify([KEY, OLD], before, ADMIN, NOW) == ("recovery", BIG)
    assert btn.verify([KEY, OLD], before, ADMIN, NOW + btn.TTL) == btn.Refused("expired")
    assert btn.verify([KEY], before, ADMIN, NOW) == btn.Refused("bad_signature")
    stranger = btn.sign(b"s" * 32, "recovery", ADMIN, BIG, NOW + btn.TTL)
    assert btn.verify([KEY, OLD], stranger, ADMIN, NOW) == btn.Refused("bad_signature")
