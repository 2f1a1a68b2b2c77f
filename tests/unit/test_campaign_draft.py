"""Draft edits: one change at a time, checked by the same rules as the API's PUT."""

from __future__ import annotations

from typing import Any

import pytest

from reengage.domain import campaign_draft as cd
from reengage.domain.schedule import ScheduleError


def two_steps() -> dict[str, Any]:
    draft = cd.add_step({}, "30m")
    draft = cd.add_text_block(draft, 0, "Oi!")
    draft = cd.add_step(draft, "amanhã 09:00")
    return cd.add_media_block(draft, 1, "photo", 7, "Promo")


def test_a_campaign_is_built_edit_by_edit() -> None:
    draft = two_steps()
    draft = cd.set_delay(draft, 0, 0, "5s")
    draft = cd.set_auto_delete(draft, 1, 0, "1h")
    draft = cd.set_caption(draft, 1, 0, "Nova legenda")
    assert draft["steps"] == [
        {"schedule": "30m", "blocks": [{"kind": "text", "text": "Oi!", "delay": "5s"}]},
        {
            "schedule": "tomorrow 09:00",
            "blocks": [
                {
                    "kind": "photo",
                    "asset_id": 7,
                    "caption": "Nova legenda",
                    "auto_delete_after": "1h",
                }
            ],
        },
    ]


def test_edits_never_change_their_input() -> None:
    draft = two_steps()
    before = repr(draft)
    cd.delete_step(draft, 0)
    cd.set_schedule(draft, 1, "2h")
    cd.add_exclusion(draft, "42")
    assert repr(draft) == before


def test_steps_move_and_go() -> None:
    draft = two_steps()
    moved = cd.move_step(draft, 1, -1)
    assert [s["schedule"] for s in moved["steps"]] == ["tomorrow 09:00", "30m"]
    assert cd.move_step(draft, 0, -1) == draft  # already first
    assert [s["schedule"] for s in cd.delete_step(draft, 0)["steps"]] == ["tomorrow 09:00"]
    assert cd.delete_block(draft, 0, 0)["steps"][0]["blocks"] == []


def test_settings_and_exclusions() -> None:
    draft = cd.set_threshold({}, "15m")
    draft = cd.set_time_zone(draft, "Europe/Lisbon")
    draft = cd.set_ignore_paid(draft, False)
    draft = cd.set_window(draft, "08:00 - 21:00")
    draft = cd.add_exclusion(cd.add_exclusion(draft, "42"), "42")
    assert draft == {
        "threshold": "15m",
        "time_zone": "Europe/Lisbon",
        "ignore_paid": False,
        "send_window": {"start": "08:00", "end": "21:00", "weekdays": [0, 1, 2, 3, 4, 5, 6]},
        "exclusions": ["42"],
    }
    assert cd.remove_exclusion(draft, "42")["exclusions"] == []
    assert "send_window" not in cd.set_window(draft, "-")


@pytest.mark.parametrize(
    ("edit", "pt", "en"),
    [
        (
            lambda d: cd.set_schedule(d, 1, "amanhã 25:00"),
            "Horário inválido: 25:00",
            "Invalid time: 25:00",
        ),
        (
            lambda d: cd.add_step(d, "45s"),
            "O intervalo mínimo é de 1 minuto: 45s",
            "The minimum delay is 1 minute: 45s",
        ),
        (
            lambda d: cd.set_time_zone(d, "Mars/Base"),
            "Fuso horário desconhecido: Mars/Base",
            "Unknown time zone: Mars/Base",
        ),
        (
            lambda d: cd.set_window(d, "21:00-08:00"),
            "Janela de envio inválida: 21:00-08:00",
            "Invalid send window: 21:00-08:00",
        ),
        (
            lambda d: cd.set_threshold(d, "30s"),
            "A inatividade mínima é de 1 minuto: 30s",
            "The inactivity threshold is at least 1 minute: 30s",
        ),
        (
            lambda d: cd.set_threshold(d, "soon"),
            "Duração inválida: soon. Use 30s, 10m, 2h ou 1d",
            "Invalid duration: soon. Use 30s, 10m, 2h or 1d",
        ),
        (
            lambda d: cd.set_auto_delete(d, 0, 0, "10s"),
            "A exclusão automática precisa de pelo menos 1 minuto: 10s",
            "Auto-delete needs at least 1 minute: 10s",
        ),
        (lambda d: cd.set_delay(d, 5, 0, "1s"), "O passo 6 não existe", "Step 6 does not exist"),
        (
            lambda d: cd.set_caption(d, 0, 0, "x"),
            "Só blocos de mídia têm legenda",
            "Only media blocks have a caption",
        ),
        (lambda d: cd.delete_block(d, 0, 3), "O bloco 4 não existe", "Block 4 does not exist"),
        (
            lambda d: cd.add_exclusion(d, "a b"),
            "ID de usuário inválido: a b",
            "Invalid user id: a b",
        ),
    ],
)
def test_bad_input_is_explained_in_both_languages(edit: Any, pt: str, en: str) -> None:
    with pytest.raises((ScheduleError, cd.DraftError)) as caught:
        edit(two_steps())
    error = caught.value
    assert isinstance(error, ScheduleError | cd.DraftError)
    assert (error.message("pt-BR"), error.message("en")) == (pt, en)


def test_the_campaign_rules_apply_to_every_edit() -> None:
    with pytest.raises(cd.DraftError) as caught:
        cd.add_text_block(two_steps(), 0, "x" * 4097)
    assert caught.value.message("en").startswith("Invalid campaign: steps[0].blocks[1]")
