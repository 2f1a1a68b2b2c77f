from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reengage.domain.policy import (
    LEGACY_MESSAGE,
    Action,
    Level,
    PolicyError,
    PolicyLayer,
    Reminder,
    RunStage,
    Situation,
    Skip,
    Wait,
    decide_stage,
    parse_layer,
    resolve,
    stages,
    whatsapp_warnings,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_the_shipped_question_default_is_the_legacy_behaviour() -> None:
    policy = resolve([], at_question=True)
    assert (policy.enabled, policy.timeout, policy.action, policy.final_text) == (
        True,
        timedelta(hours=1),
        Action.HANDOFF,
        LEGACY_MESSAGE["pt-BR"],
    )
    assert policy.reminders == ()
    assert set(policy.sources.values()) == {Level.DEFAULT}


def test_everything_else_defaults_to_off() -> None:
    assert resolve([], at_question=False).enabled is False


def test_the_most_specific_level_wins_field_by_field() -> None:
    layers = [
        (Level.NODE, PolicyLayer(timeout=5 * MIN)),
        (Level.FLOW, PolicyLayer(timeout=20 * MIN, action=Action.CLOSE)),
        (Level.BOT, PolicyLayer(enabled=True, reminders=(Reminder(2 * MIN, "oi?"),))),
        (Level.ORGANIZATION, PolicyLayer(enabled=False, queue="suporte")),
    ]
    policy = resolve(layers, at_question=True)
    assert (policy.timeout, policy.action, policy.enabled, policy.queue) == (
        5 * MIN,
        Action.CLOSE,
        True,
        "suporte",
    )
    assert policy.sources["timeout"] is Level.NODE
    assert policy.sources["action"] is Level.FLOW
    assert policy.sources["enabled"] is Level.BOT
    assert policy.sources["queue"] is Level.ORGANIZATION
    assert policy.sources["final_text"] is Level.DEFAULT


POLICY = resolve(
    [
        (
            Level.BOT,
            PolicyLayer(
                enabled=True,
                timeout=10 * MIN,
                action=Action.CLOSE,
                final_text="tchau",
                reminders=(Reminder(5 * MIN, "ainda aí?"), Reminder(2 * MIN, "oi?")),
            ),
        )
    ],
    at_question=True,
)


@pytest.mark.parametrize(
    ("situation", "done", "minutes", "expected"),
    [
        (Situation.QUESTION, 0, 1, Wait(T0 + 2 * MIN)),
        (Situation.QUESTION, 0, 2, "reminder:0"),
        (Situation.QUESTION, 1, 3, Wait(T0 + 5 * MIN)),
        (Situation.QUESTION, 1, 6, "reminder:1"),
        (Situation.QUESTION, 2, 10, "final:close"),
        (Situation.QUESTION, 3, 60, Skip("completed")),
        (Situation.BOT_WAIT, 0, 60, Skip("not_applicable")),
        (Situation.WAITING_FOR_AGENT, 0, 60, Skip("skipped_waiting_for_agent")),
    ],
)
def test_stages_run_in_order(
    situation: Situation, done: int, minutes: int, expected: object
) -> None:
    decision = decide_stage(POLICY, situation, T0, done, T0 + minutes * MIN)
    if isinstance(expected, str):
        assert isinstance(decision, RunStage)
        kind, detail = expected.split(":")
        if kind == "reminder":
            assert (decision.action, decision.stage.index) == (None, int(detail))
        else:
            assert (decision.stage.final, decision.action) == (True, Action(detail))
    else:
        assert decision == expected


def test_stage_order_is_by_time() -> None:
    assert [(s.after, s.final) for s in stages(POLICY)] == [
        (2 * MIN, False),
        (5 * MIN, False),
        (10 * MIN, True),
    ]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"timeout": "30s"}, "timeout"),
        ({"timeout": "31d"}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": "10m", "reminders": [{"after": "10m"}]}, "reminders[0].after"),
        ({"reminders": [{"text": "x"}]}, "reminders[0]"),
        ({"action": "explode"}, "action"),
        ({"action": "fallback_flow"}, "fallback_flow"),
        ({"applies_to": ["sometimes"]}, "applies_to"),
    ],
)
def test_invalid_settings_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_layer(data)
    assert err.value.field == field


def test_whatsapp_stages_past_the_window_need_a_template() -> None:
    layer = parse_layer(
        {
            "timeout": "2d",
            "final_text": "bye",
            "reminders": [
                {"after": "1d1h", "text": "oi"},
                {"after": "1h", "text": "oi"},
                {"after": "1d2h", "template": "volta"},
            ],
        }
    )
    warnings = whatsapp_warnings(layer)
    assert len(warnings) == 2
    assert warnings[0].startswith("reminders[0]")


def test_the_legacy_message_goes_only_with_the_legacy_action() -> None:
    chosen = resolve([(Level.NODE, PolicyLayer(action=Action.CLOSE))], at_question=True)
    assert chosen.final_text is None
    kept = resolve([(Level.NODE, PolicyLayer(timeout=5 * MIN))], at_question=True)
    assert kept.final_text == LEGACY_MESSAGE["pt-BR"]
