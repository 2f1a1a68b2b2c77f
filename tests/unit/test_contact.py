"""What a contact's phone number and platform tell about them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from reengage.domain.contact import language_tag, zone_from_phone


@pytest.mark.parametrize(
    ("number", "zone"),
    [
        ("5511987654321", "America/Sao_Paulo"),  # São Paulo mobile
        ("5592981234567", "America/Manaus"),  # Amazonas: one hour behind
        ("+4915112345678", "Europe/Berlin"),
        ("351912345678", None),  # Portugal: Lisbon or the Azores
        ("34612345678", None),  # Spain: Madrid or the Canaries
        ("551199999999", None),  # not a valid number
        ("not a number", None),
    ],
)
def test_a_number_gives_its_zone_only_when_it_has_one(number: str, zone: str | None) -> None:
    assert zone_from_phone(number) == zone


def test_zones_that_keep_the_same_time_all_year_count_as_one() -> None:
    # a UK mobile: London, Guernsey, Jersey or the Isle of Man, always on the same clock
    zone = zone_from_phone("447911123456")
    assert zone is not None
    probes = [datetime(2026, m, 15, 12, tzinfo=UTC) for m in (1, 7)]
    assert [p.astimezone(ZoneInfo(zone)).utcoffset() for p in probes] == [
        p.astimezone(ZoneInfo("Europe/London")).utcoffset() for p in probes
    ]


@pytest.mark.parametrize(
    ("code", "tag"),
    [
        ("pt-br", "pt-BR"),
        ("pt", "pt-BR"),
        ("en", "en"),
        ("en-US", "en"),
        ("es", None),
        (None, None),
    ],
)
def test_platform_language_codes(code: str | None, tag: str | None) -> None:
    assert language_tag(code) == tag
