"""Recovery campaigns in the domain: template blocks, steps that send nothing, the window."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from reengage.domain import recovery as rec
from reengage.domain.outbound import MessageKind

TEMPLATE = {
    "kind": "template",
    "template": {"name": "volte", "language": "pt_BR", "parameters": ["{name|cliente}", "10%"]},
}


@pytest.mark.parametrize(
    ("name", "parameters"),
    [("Maria", ("Maria", "10%")), (None, ("cliente", "10%")), ("  ", ("cliente", "10%"))],
)
def test_a_template_block_fills_the_contacts_name(
    name: str | None, parameters: tuple[str, ...]
) -> None:
    campaign = rec.parse_campaign({"steps": [{"schedule": "1d", "blocks": [TEMPLATE]}]})
    message = campaign.steps[0].blocks[0].message(name)
    assert message.kind is MessageKind.TEMPLATE
    assert message.template is not None
    assert (message.template.name, message.template.parameters) == ("volte", parameters)


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({}, "steps[0].blocks[0].template.name"),
        ({"name": "x", "parameters": [""]}, "steps[0].blocks[0].template.parameters"),
        ({"name": "x", "language": "Portuguese"}, "steps[0].blocks[0].template.language"),
    ],
)
def test_a_bad_template_names_its_field(template: dict[str, Any], field: str) -> None:
    block = {"kind": "template", "template": template}
    with pytest.raises(rec.CampaignError) as caught:
        rec.parse_campaign({"steps": [{"schedule": "1d", "blocks": [block]}]})
    assert caught.value.field == field


def step(schedule: str, active: bool = True, kind: str = "text") -> dict[str, Any]:
    block = TEMPLATE if kind == "template" else {"kind": "text", "text": "oi", "active": active}
    return {"schedule": schedule, "blocks": [block]}


def test_steps_without_an_active_block_are_skipped_entirely() -> None:
    campaign = rec.parse_campaign(
        {"threshold": "10m", "steps": [step("5h", False), step("30m"), step("2h")]}
    )
    assert (campaign.next_step(), campaign.next_step(1), campaign.next_step(2)) == (1, 2, None)
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    dues = rec.step_dues(campaign, start)
    assert [(i, (d - start).total_seconds() / 60) for i, d in dues] == [(1, 30), (2, 150)]


@pytest.mark.parametrize(
    ("steps", "late"),
    [
        ([step("30m"), step("2h")], []),
        ([step("30m"), step("1d")], [1]),  # 10m + 30m + 1d: past 24 h
        ([step("30m"), step("+2d 10:00", kind="template")], []),  # a template may go
        ([step("amanhã 23:59")], [0]),  # from early morning, tomorrow late evening
        ([step("23h")], []),  # 10 m + 23 h: inside
    ],
)
def test_whatsapp_steps_that_can_fall_outside_the_window_are_named(
    steps: list[dict[str, Any]], late: list[int]
) -> None:
    campaign = rec.parse_campaign({"threshold": "10m", "steps": steps})
    assert sorted(rec.late_steps(campaign)) == late
