"""One voice per contact: keywords, the minimum gap, settings at two levels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reengage.domain import voice as vc

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MIN5 = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("text", "opted_out", "expected"),
    [
        ("parar", False, vc.OptOut()),
        ("  PÁRAR ", False, vc.OptOut()),
        ("Stop", True, vc.OptOut()),
        ("parar agora", False, None),  # the whole message, not a word in it
        ("voltar a receber", True, vc.OptIn()),
        ("Voltar  a   receber", True, vc.OptIn()),
        ("voltar a receber", False, None),  # only who opted out opts in
        (None, False, None),
        ("", False, None),
    ],
)
def test_keywords_are_whole_messages_without_case_or_accents(
    text: str | None, opted_out: bool, expected: object
) -> None:
    assert vc.decide_keyword(vc.Voice(), text, opted_out) == expected


@pytest.mark.parametrize(
    ("gap", "opted_out", "last", "last_group", "now", "expected"),
    [
        (timedelta(0), False, T0, "a", T0, vc.Allow()),
        (timedelta(hours=1), False, None, None, T0, vc.Allow()),
        (
            timedelta(hours=1),
            False,
            T0,
            "a",
            T0 + timedelta(minutes=5),
            vc.Hold(T0 + timedelta(hours=1)),
        ),
        (timedelta(hours=1), False, T0, "b", T0 + MIN5, vc.Allow()),  # the same group
        (timedelta(hours=1), False, T0, "a", T0 + timedelta(hours=1), vc.Allow()),
        (timedelta(0), True, None, None, T0, vc.Refuse("opted_out")),
    ],
)
def test_proactive_messages_obey_the_opt_out_and_the_gap(
    gap: timedelta,
    opted_out: bool,
    last: datetime | None,
    last_group: str | None,
    now: datetime,
    expected: object,
) -> None:
    decision = vc.decide_proactive(
        vc.Voice(min_gap=gap),
        group="b",
        opted_out=opted_out,
        last_at=last,
        last_group=last_group,
        now=now,
    )
    assert decision == expected


def test_the_bot_level_wins_field_by_field_and_a_campaign_adds_keywords() -> None:
    bot = vc.parse_layer({"min_gap": "2h"})
    org = vc.parse_layer({"min_gap": "30m", "optout_keywords": ["Cancelar"]})
    voice = vc.resolve([bot, org], extra_optout=["basta"])
    assert voice.min_gap == timedelta(hours=2)
    assert voice.optout_keywords == ("cancelar", "basta")
    assert voice.optin_keywords == vc.DEFAULT_OPTIN
    assert vc.resolve([]).optout_keywords == vc.DEFAULT_OPTOUT


def test_confirmations_speak_the_contacts_language() -> None:
    voice = vc.Voice()
    assert vc.confirmation(voice, vc.OptOut(), "en").startswith("Done")
    assert vc.confirmation(voice, vc.OptIn(), "pt-BR").startswith("Pronto")
    custom = vc.Voice(optout_confirmation="Ok, parei.")
    assert vc.confirmation(custom, vc.OptOut(), "en") == "Ok, parei."


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"min_gap": "soon"}, "min_gap"),
        ({"min_gap": "8d"}, "min_gap"),
        ({"optout_keywords": "parar"}, "optout_keywords"),
        ({"optin_keywords": [""]}, "optin_keywords"),
        ({"optout_confirmation": ""}, "optout_confirmation"),
        ({"volume": 3}, "volume"),
    ],
)
def test_bad_settings_name_their_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(vc.VoiceError) as caught:
        vc.parse_layer(data)
    assert caught.value.field == field


def test_settings_round_trip() -> None:
    data = {"min_gap": "1h30m", "optout_keywords": ["parar"], "optin_confirmation": "Oi de novo"}
    assert vc.layer_to_json(vc.parse_layer(data)) == data
