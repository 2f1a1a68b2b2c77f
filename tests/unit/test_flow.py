from __future__ import annotations

from typing import Any

import pytest

from reengage.domain.flow import FlowError, Position, answer, parse_flow, run, validate_flow

SALES: dict[str, Any] = {
    "start": "hello",
    "nodes": [
        {"id": "hello", "type": "message", "text": "Olá!", "next": "plan"},
        {
            "id": "plan",
            "type": "question",
            "text": "Qual plano? (mensal/anual)",
            "var": "plan",
            "choices": ["mensal", "anual"],
            "retry_text": "Responda mensal ou anual.",
            "next": "thanks",
        },
        {"id": "thanks", "type": "message", "text": "Plano {plan} anotado.", "next": "human"},
        {"id": "human", "type": "handoff", "queue": "vendas", "text": "Chamando um vendedor."},
    ],
}


def flows() -> dict[str, Any]:
    sales = parse_flow("sales", SALES)
    rescue = parse_flow(
        "rescue",
        {
            "nodes": [
                {"id": "r1", "type": "message", "text": "Vamos tentar de novo?", "next": "r2"},
                {"id": "r2", "type": "goto_flow", "flow": "sales"},
            ]
        },
    )
    return {"sales": sales, "rescue": rescue}


def test_run_stops_at_the_first_question() -> None:
    step = run(flows(), "sales", None, {})
    assert step.say == ("Olá!", "Qual plano? (mensal/anual)")
    assert (step.position.node, step.outcome) == ("plan", "waiting")


def test_an_answer_is_stored_and_the_flow_goes_on() -> None:
    step = answer(flows(), Position("sales", "plan"), " ANUAL ")
    assert step.say == ("Plano anual anotado.", "Chamando um vendedor.")
    assert step.position.variables == {"plan": "anual"}
    assert (step.position.status, step.position.queue, step.outcome) == (
        "handoff",
        "vendas",
        "handoff",
    )


def test_an_answer_outside_the_choices_is_asked_again() -> None:
    step = answer(flows(), Position("sales", "plan"), "semestral")
    assert (step.say, step.outcome, step.position.node) == (
        ("Responda mensal ou anual.",),
        "reasked",
        "plan",
    )


def test_goto_flow_continues_in_the_other_flow() -> None:
    step = run(flows(), "rescue", None, {})
    assert step.say == ("Vamos tentar de novo?", "Olá!", "Qual plano? (mensal/anual)")
    assert step.position.flow == "sales"


@pytest.mark.parametrize(
    ("definition", "node", "message"),
    [
        (
            {"nodes": [{"id": "a", "type": "message", "text": "x", "next": "b"}]},
            "a",
            "next 'b' does not exist",
        ),
        (
            {"nodes": [{"id": "a", "type": "close"}, {"id": "b", "type": "close"}]},
            "b",
            "unreachable from the start node",
        ),
        (
            {
                "nodes": [
                    {"id": "a", "type": "message", "text": "x", "next": "b"},
                    {"id": "b", "type": "message", "text": "y", "next": "a"},
                ]
            },
            "a",
            "loop without a question",
        ),
        (
            {"nodes": [{"id": "a", "type": "goto_flow", "flow": "nowhere"}]},
            "a",
            "target flow 'nowhere' does not exist",
        ),
    ],
)
def test_invalid_flows_name_the_node(definition: dict[str, Any], node: str, message: str) -> None:
    with pytest.raises(FlowError) as err:
        validate_flow(parse_flow("f", definition), {"sales"})
    assert (err.value.node, err.value.message) == (node, message)


@pytest.mark.parametrize(
    ("definition", "node", "message"),
    [
        ({"nodes": []}, None, "nodes must be a non-empty list"),
        (
            {"nodes": [{"id": "q", "type": "question", "text": "?"}]},
            "q",
            "question node needs 'var'",
        ),
        ({"nodes": [{"id": "x", "type": "teleport"}]}, "x", "unknown type 'teleport'"),
        ({"nodes": [{"id": "x", "type": "close", "colour": 1}]}, "x", "unknown field 'colour'"),
        (
            {"nodes": [{"id": "x", "type": "close"}, {"id": "x", "type": "close"}]},
            "x",
            "duplicate node id",
        ),
    ],
)
def test_malformed_flows_are_refused(
    definition: dict[str, Any], node: str | None, message: str
) -> None:
    with pytest.raises(FlowError) as err:
        parse_flow("f", definition)
    assert (err.value.node, err.value.message) == (node, message)


def test_a_loop_through_a_question_is_fine() -> None:
    loop = parse_flow(
        "loop",
        {
            "nodes": [
                {"id": "ask", "type": "question", "text": "De novo?", "var": "v", "next": "say"},
                {"id": "say", "type": "message", "text": "ok", "next": "ask"},
            ]
        },
    )
    validate_flow(loop, set())
