"""Conversation inactivity policies: four levels, resolved field by field, run in stages.

Levels, most specific first: question node > flow > bot (channel) > organization. Each level
sets some fields; the most specific level that sets a field wins. Under them lie the shipped
defaults: at a question node, today's behaviour (1 hour, then the legacy message and a
handoff); everywhere else, off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from reengage.domain.duration import format_duration, parse_duration

MIN_DURATION = timedelta(minutes=1)
MAX_DURATION = timedelta(days=30)

LEGACY_MESSAGE = {
    "pt-BR": "O tempo para resposta expirou. Vou encaminhar você para um agente humano.",
    "en": "The time to answer has run out. I will transfer you to a human agent.",
}
DEFAULT_CLOSE_MESSAGE = {
    "pt-BR": "Encerramos esta conversa por falta de resposta. Se precisar, é só escrever.",
    "en": "We closed this conversation for lack of an answer. Write any time you need us.",
}
DEFAULT_REMINDER = {
    "pt-BR": "Ainda está por aí? Estou aguardando sua resposta.",
    "en": "Are you still there? I'm waiting for your answer.",
}


class Level(StrEnum):
    NODE = "node"
    FLOW = "flow"
    BOT = "bot"
    ORGANIZATION = "organization"
    DEFAULT = "default"


class Action(StrEnum):
    CLOSE = "close"
    HANDOFF = "handoff"
    FALLBACK_FLOW = "fallback_flow"
    NONE = "none"


class Situation(StrEnum):
    """Who the conversation is waiting on."""

    QUESTION = "question"  # the bot asked at a question node; waiting on the user
    BOT_WAIT = "bot_wait"  # the bot spoke last, anywhere else; waiting on the user
    HANDOFF = "handoff"  # a human agent spoke last; waiting on the customer
    WAITING_FOR_AGENT = "waiting_for_agent"  # in handoff, the customer spoke last
    NONE = "none"  # closed, or the user spoke last in a bot conversation


class PolicyError(ValueError):
    def __init__(self, message: str, field_name: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class Reminder:
    after: timedelta
    text: str | None = None
    template: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyLayer:
    """What one level sets (None: not set here, ask the next level)."""

    enabled: bool | None = None
    timeout: timedelta | None = None
    reminders: tuple[Reminder, ...] | None = None
    action: Action | None = None
    queue: str | None = None
    fallback_flow: str | None = None
    final_text: str | None = None
    final_template: str | None = None
    applies_to: frozenset[Situation] | None = None
    skip_if_waiting_for_agent: bool | None = None
    # A stage's message whose send left without an answer: `skip` (at most once) or
    # `retry_once` (at least once).
    on_ambiguous: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """A resolved policy, with the level each field came from."""

    enabled: bool
    timeout: timedelta
    reminders: tuple[Reminder, ...]
    action: Action
    queue: str
    fallback_flow: str | None
    final_text: str | None
    final_template: str | None
    applies_to: frozenset[Situation]
    skip_if_waiting_for_agent: bool
    on_ambiguous: str = "skip"
    sources: Mapping[str, Level] = field(default_factory=dict)


def question_default(language: str) -> PolicyLayer:
    """Today's hard-coded behaviour at question nodes, as a policy."""
    return PolicyLayer(
        True,
        timedelta(hours=1),
        (),
        Action.HANDOFF,
        "default",
        None,
        LEGACY_MESSAGE.get(language, LEGACY_MESSAGE["pt-BR"]),
        None,
        frozenset({Situation.QUESTION}),
        True,
        "skip",
    )


OFF = PolicyLayer(
    False,
    timedelta(hours=1),
    (),
    Action.NONE,
    "default",
    None,
    None,
    None,
    frozenset({Situation.QUESTION, Situation.BOT_WAIT, Situation.HANDOFF}),
    True,
    "skip",
)


def resolve(
    layers: Sequence[tuple[Level, PolicyLayer]], at_question: bool, language: str = "pt-BR"
) -> Policy:
    """Field by field, the most specific level that sets it; then the shipped default."""
    base = question_default(language) if at_question else OFF
    values: dict[str, Any] = {}
    sources: dict[str, Level] = {}
    for f in fields(PolicyLayer):
        values[f.name], sources[f.name] = None, Level.DEFAULT
        for level, layer in [*layers, (Level.DEFAULT, base)]:
            value = getattr(layer, f.name)
            if value is not None:
                values[f.name], sources[f.name] = value, level
                break
    if sources["final_text"] is Level.DEFAULT and sources["action"] is not Level.DEFAULT:
        # The shipped message belongs to the shipped action ("...a human agent" is wrong for
        # a close or a fallback an operator chose).
        values["final_text"] = None
    return Policy(**values, sources=sources)


@dataclass(frozen=True, slots=True)
class Stage:
    index: int
    after: timedelta  # silence before it fires
    final: bool
    text: str | None
    template: str | None


def stages(policy: Policy) -> list[Stage]:
    """Reminders in order, then the final action at the timeout."""
    out = [
        Stage(i, r.after, False, r.text, r.template)
        for i, r in enumerate(sorted(policy.reminders, key=lambda r: r.after))
    ]
    out.append(Stage(len(out), policy.timeout, True, policy.final_text, policy.final_template))
    return out


@dataclass(frozen=True, slots=True)
class RunStage:
    """Execute this stage now (a reminder, or the final action)."""

    stage: Stage
    action: Action | None  # None for a reminder


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing due yet: wake up at `until`."""

    until: datetime


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


StageDecision = RunStage | Wait | Skip


def stages_done(timeout_stage: int, timeout_seq: int, activity_seq: int) -> int:
    """How many stages already ran in the current silence (each new message starts over)."""
    return timeout_stage if timeout_seq == activity_seq else 0


def upcoming(
    policy: Policy, situation: Situation, silent_since: datetime, done: int
) -> tuple[Stage, datetime] | Skip:
    """The next stage this silence will run and when it is due; or why none will."""
    if not policy.enabled:
        return Skip("disabled")
    if situation is Situation.WAITING_FOR_AGENT:
        if policy.skip_if_waiting_for_agent or Situation.HANDOFF not in policy.applies_to:
            return Skip("skipped_waiting_for_agent")
    elif situation not in policy.applies_to:
        return Skip("not_applicable")
    todo = [s for s in stages(policy) if s.index >= done]
    if not todo:
        return Skip("completed")
    return todo[0], silent_since + todo[0].after


def decide_stage(
    policy: Policy, situation: Situation, silent_since: datetime, done: int, now: datetime
) -> StageDecision:
    """What the policy wants now, given how many stages already ran in this silence."""
    next_one = upcoming(policy, situation, silent_since, done)
    if isinstance(next_one, Skip):
        return next_one
    stage, due = next_one
    if now < due:
        return Wait(due)
    return RunStage(stage, policy.action if stage.final else None)


def as_layer(policy: Policy) -> PolicyLayer:
    """A resolved policy as one level's settings (every field set)."""
    return PolicyLayer(**{f.name: getattr(policy, f.name) for f in fields(PolicyLayer)})


def parse_layer(data: Mapping[str, Any], prefix: str = "") -> PolicyLayer:
    """A level's settings from the API's JSON; raise PolicyError naming the field."""

    def dur(name: str) -> timedelta | None:
        raw = data.get(name)
        if raw is None:
            return None
        try:
            value = parse_duration(str(raw))
        except ValueError as exc:
            raise PolicyError(str(exc), prefix + name) from exc
        if not MIN_DURATION <= value <= MAX_DURATION:
            raise PolicyError("must be between 1m and 30d", prefix + name)
        return value

    reminders = None
    if data.get("reminders") is not None:
        reminders = tuple(_reminder(i, r, prefix) for i, r in enumerate(data["reminders"]))
    action = _enum(Action, data.get("action"), prefix + "action")
    applies = data.get("applies_to")
    layer = PolicyLayer(
        enabled=data.get("enabled"),
        timeout=dur("timeout"),
        reminders=reminders,
        action=action,
        queue=data.get("queue"),
        fallback_flow=data.get("fallback_flow"),
        final_text=data.get("final_text"),
        final_template=data.get("final_template"),
        applies_to=None
        if applies is None
        else frozenset(_enum(Situation, a, prefix + "applies_to") for a in applies),
        skip_if_waiting_for_agent=data.get("skip_if_waiting_for_agent"),
        on_ambiguous=_on_ambiguous(data.get("on_ambiguous"), prefix),
    )
    check_layer(layer, prefix)
    return layer


def _on_ambiguous(raw: Any, prefix: str) -> str | None:
    if raw is None:
        return None
    if raw in ("skip", "retry_once"):
        return str(raw)
    raise PolicyError("must be skip or retry_once", prefix + "on_ambiguous")


def _enum(kind: type[StrEnum], raw: Any, name: str) -> Any:
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError as exc:
        allowed = ", ".join(v.value for v in kind)
        raise PolicyError(f"{raw!r} is not one of {allowed}", name) from exc


def _reminder(index: int, raw: Any, prefix: str) -> Reminder:
    name = f"{prefix}reminders[{index}]"
    if not isinstance(raw, Mapping) or "after" not in raw:
        raise PolicyError("needs 'after'", name)
    try:
        after = parse_duration(str(raw["after"]))
    except ValueError as exc:
        raise PolicyError(str(exc), f"{name}.after") from exc
    if not MIN_DURATION <= after <= MAX_DURATION:
        raise PolicyError("must be between 1m and 30d", f"{name}.after")
    return Reminder(after, raw.get("text"), raw.get("template"))


def check_layer(layer: PolicyLayer, prefix: str = "") -> None:
    """Rules within one level: reminders strictly before the timeout, a target for actions."""
    if layer.timeout is not None and layer.reminders:
        for i, r in enumerate(layer.reminders):
            if r.after >= layer.timeout:
                raise PolicyError(
                    f"must be before the timeout ({format_duration(layer.timeout)})",
                    f"{prefix}reminders[{i}].after",
                )
    if layer.action is Action.FALLBACK_FLOW and not layer.fallback_flow:
        raise PolicyError("fallback_flow action needs a fallback_flow", prefix + "fallback_flow")


def check_names(layer: PolicyLayer) -> None:
    """The queue and fallback flow a level names fit the columns a conversation keeps them in
    (checked when a level is saved: settings stored before stay readable)."""
    for name in ("queue", "fallback_flow"):
        value = getattr(layer, name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 64):
            raise PolicyError("must be a text of 1 to 64 characters", name)


def check_policy(policy: Policy) -> None:
    """Rules on the resolved policy (levels combine: a bot timeout with node reminders)."""
    for i, r in enumerate(policy.reminders):
        if r.after >= policy.timeout:
            raise PolicyError(
                f"must be before the timeout ({format_duration(policy.timeout)})",
                f"reminders[{i}].after",
            )


def layer_to_json(layer: PolicyLayer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(PolicyLayer):
        value = getattr(layer, f.name)
        if value is None:
            continue
        if isinstance(value, timedelta):
            value = format_duration(value)
        elif f.name == "reminders":
            value = [
                {"after": format_duration(r.after), "text": r.text, "template": r.template}
                for r in value
            ]
        elif isinstance(value, frozenset):
            value = sorted(v.value for v in value)
        elif isinstance(value, StrEnum):
            value = value.value
        out[f.name] = value
    return out


def whatsapp_warnings(policy: Policy | PolicyLayer) -> list[str]:
    """Stages that may fall outside WhatsApp's 24-hour window without a template."""
    warnings = []
    window = timedelta(hours=24)
    for i, r in enumerate(policy.reminders or ()):
        if r.after >= window and not r.template:
            warnings.append(
                f"reminders[{i}] fires after 24h without a template: on WhatsApp "
                "it will be skipped with window_closed"
            )
    text = policy.final_text
    if policy.timeout and policy.timeout >= window and text and not policy.final_template:
        warnings.append(
            "the final message fires after 24h without a template: on WhatsApp "
            "it will be skipped with window_closed"
        )
    return warnings
