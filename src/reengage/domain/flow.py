"""A small flow runtime: message, question, handoff, close and goto-flow nodes.

Deliberately small: enough for policies to have real question nodes and fallback flows to
act on. `run` and `answer` are pure: they return what to say and the conversation's next
position; the caller sends and persists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MAX_STEPS = 100  # nodes executed for one input; validation forbids loops without a question


class NodeType(StrEnum):
    MESSAGE = "message"
    QUESTION = "question"
    HANDOFF = "handoff"
    CLOSE = "close"
    GOTO_FLOW = "goto_flow"


class FlowError(ValueError):
    """A flow definition that cannot run; `node` names the culprit when there is one."""

    def __init__(self, message: str, node: str | None = None) -> None:
        super().__init__(f"node {node!r}: {message}" if node else message)
        self.node = node
        self.message = message


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    type: NodeType
    text: str | None = None
    next: str | None = None
    var: str | None = None  # question: where the answer is stored
    choices: tuple[str, ...] = ()  # question: accepted answers (any when empty)
    retry_text: str | None = None  # question: said when the answer is not a choice
    queue: str | None = None  # handoff: the human-agent queue
    flow: str | None = None  # goto_flow: the target flow's key


@dataclass(frozen=True, slots=True)
class Flow:
    key: str
    start: str
    nodes: Mapping[str, Node] = field(default_factory=dict)


_REQUIRED = {
    NodeType.MESSAGE: ("text",),
    NodeType.QUESTION: ("text", "var"),
    NodeType.HANDOFF: (),
    NodeType.CLOSE: (),
    NodeType.GOTO_FLOW: ("flow",),
}
# Names a conversation stores in columns of this size (its node, queue and flow).
_NAMES = {"id": 128, "next": 128, "queue": 64, "flow": 64}
_ALLOWED = {"id", "type", "text", "next", "var", "choices", "retry_text", "queue", "flow", "policy"}


def parse_flow(key: str, data: Mapping[str, Any]) -> Flow:
    """A flow from its JSON/YAML form; raise FlowError naming what is wrong."""
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise FlowError("nodes must be a non-empty list")
    nodes: dict[str, Node] = {}
    for index, raw in enumerate(raw_nodes):
        node = _parse_node(index, raw)
        if node.id in nodes:
            raise FlowError("duplicate node id", node.id)
        nodes[node.id] = node
    start = data.get("start") or raw_nodes[0].get("id")
    if not isinstance(start, str) or start not in nodes:
        raise FlowError(f"start node {start!r} does not exist")
    return Flow(key, str(start), nodes)


def _parse_node(index: int, raw: Any) -> Node:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise FlowError(f"nodes[{index}] needs a string id")
    node_id = raw["id"]
    try:
        kind = NodeType(str(raw.get("type")))
    except ValueError as exc:
        raise FlowError(f"unknown type {raw.get('type')!r}", node_id) from exc
    unknown = set(raw) - _ALLOWED
    if unknown:
        raise FlowError(f"unknown field {sorted(unknown)[0]!r}", node_id)
    for name in _REQUIRED[kind]:
        if not raw.get(name):
            raise FlowError(f"{kind.value} node needs {name!r}", node_id)
    choices = raw.get("choices") or ()
    if not isinstance(choices, list | tuple) or not all(isinstance(c, str) for c in choices):
        raise FlowError("choices must be a list of strings", node_id)
    return Node(
        node_id,
        kind,
        raw.get("text"),
        raw.get("next"),
        raw.get("var"),
        tuple(choices),
        raw.get("retry_text"),
        raw.get("queue"),
        raw.get("flow"),
    )


def validate_flow(flow: Flow, known_flows: set[str]) -> None:
    """Targets exist, every node is reachable, and no loop runs without waiting on a question."""
    for node in flow.nodes.values():
        for name, most in _NAMES.items():
            value = getattr(node, name)
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= most):
                raise FlowError(f"{name} must be a text of 1 to {most} characters", node.id)
    for node in flow.nodes.values():
        if node.next is not None and node.next not in flow.nodes:
            raise FlowError(f"next {node.next!r} does not exist", node.id)
        if node.type is NodeType.GOTO_FLOW and node.flow not in known_flows | {flow.key}:
            raise FlowError(f"target flow {node.flow!r} does not exist", node.id)
    reachable = _reachable(flow)
    for node_id in flow.nodes:
        if node_id not in reachable:
            raise FlowError("unreachable from the start node", node_id)
    _check_loops(flow)


def _reachable(flow: Flow) -> set[str]:
    seen: set[str] = set()
    todo = [flow.start]
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = flow.nodes[node_id]
        if node.next and node.type not in (NodeType.CLOSE, NodeType.GOTO_FLOW):
            todo.append(node.next)
    return seen


def _check_loops(flow: Flow) -> None:
    """A cycle through message nodes only would spin forever: a question must break it."""
    for start in flow.nodes.values():
        seen: set[str] = set()
        node: Node | None = start
        while node is not None and node.type is NodeType.MESSAGE and node.next:
            if node.id in seen:
                raise FlowError("loop without a question", node.id)
            seen.add(node.id)
            node = flow.nodes.get(node.next)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a conversation is: its flow, node, status and variables."""

    flow: str | None
    node: str | None
    status: str = "bot"
    queue: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    """What one input did: messages to send, in order, and where the conversation ends up."""

    position: Position
    say: tuple[str, ...] = ()
    outcome: str = "waiting"  # waiting | reasked | handoff | closed | finished


def run(
    flows: Mapping[str, Flow], flow_key: str, node_id: str | None, variables: Mapping[str, Any]
) -> Step:
    """Execute from a node until the flow waits on a question, hands off, closes or ends."""
    say: list[str] = []
    flow = flows[flow_key]
    current = node_id or flow.start
    for _ in range(MAX_STEPS):
        node = flow.nodes[current]
        if node.text and node.type is not NodeType.GOTO_FLOW:
            say.append(_fill(node.text, variables))
        if node.type is NodeType.QUESTION:
            return Step(Position(flow.key, node.id, "bot", None, variables), tuple(say))
        if node.type is NodeType.HANDOFF:
            queue = node.queue or "default"
            return Step(
                Position(flow.key, node.id, "handoff", queue, variables), tuple(say), "handoff"
            )
        if node.type is NodeType.CLOSE:
            return Step(
                Position(flow.key, node.id, "closed", None, variables), tuple(say), "closed"
            )
        if node.type is NodeType.GOTO_FLOW:
            flow = flows[str(node.flow)]
            current = flow.start
            continue
        if node.next is None:
            return Step(Position(flow.key, None, "bot", None, variables), tuple(say), "finished")
        current = node.next
    raise FlowError("too many steps without waiting", current)


def answer(flows: Mapping[str, Flow], position: Position, text: str) -> Step:
    """The user's message at a question: store it and go on, or re-ask when it is no choice."""
    if position.flow is None or position.node is None:
        return Step(position, (), "finished")
    node = flows[position.flow].nodes[position.node]
    if node.type is not NodeType.QUESTION:
        return Step(position, (), "finished")
    value = text.strip()
    if node.choices:
        match = next((c for c in node.choices if c.casefold() == value.casefold()), None)
        if match is None:
            retry = node.retry_text or node.text or ""
            return Step(position, (_fill(retry, position.variables),), "reasked")
        value = match
    variables = {**position.variables, str(node.var): value}
    if node.next is None:
        return Step(Position(position.flow, None, "bot", None, variables), (), "finished")
    return run(flows, position.flow, node.next, variables)


def _fill(text: str, variables: Mapping[str, Any]) -> str:
    """`{name}` placeholders from the conversation's variables; unknown ones stay as written."""
    out = text
    for name, value in variables.items():
        out = out.replace("{" + name + "}", str(value))
    return out
