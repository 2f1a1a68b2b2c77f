"""One voice per contact: opt-out and opt-in keywords, and the minimum gap between proactive
messages, whatever feature sends them.

A *proactive* message is one reengage decides to send on its own (a timeout's reminder or
final message, a fallback flow started by a timeout, a recovery block). Replies to the
contact's own messages (a flow's answer, an agent's reply, a keyword's confirmation) are not
proactive: they are always allowed.

Settings live at two levels, bot over organization, field by field, over shipped defaults.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from reengage.domain.duration import format_duration, parse_duration

# Whole messages that stop every proactive message, and bring them back. Matched without
# case or accents ("Parar", "PARAR" and "párar" are all "parar").
DEFAULT_OPTOUT = ("parar", "sair", "descadastrar", "stop", "unsubscribe")
DEFAULT_OPTIN = ("voltar a receber", "start", "resume")
MAX_GAP = timedelta(days=7)

OPTOUT_CONFIRMATION = {
    "pt-BR": "Pronto, você não receberá mais mensagens automáticas. "
    "Para voltar a recebê-las, envie VOLTAR A RECEBER.",
    "en": "Done: you will not receive automatic messages any more. "
    "To receive them again, send START.",
}
OPTIN_CONFIRMATION = {
    "pt-BR": "Pronto, você voltará a receber nossas mensagens.",
    "en": "Done: you will receive our messages again.",
}


class VoiceError(ValueError):
    def __init__(self, message: str, field_name: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class VoiceLayer:
    """What one level sets (None: ask the next level)."""

    min_gap: timedelta | None = None
    optout_keywords: tuple[str, ...] | None = None
    optin_keywords: tuple[str, ...] | None = None
    optout_confirmation: str | None = None
    optin_confirmation: str | None = None


@dataclass(frozen=True, slots=True)
class Voice:
    """The resolved rules for one bot's contacts."""

    min_gap: timedelta = timedelta(0)
    optout_keywords: tuple[str, ...] = DEFAULT_OPTOUT
    optin_keywords: tuple[str, ...] = DEFAULT_OPTIN
    optout_confirmation: str | None = None
    optin_confirmation: str | None = None


def normalize(text: str) -> str:
    """Lower case, no accents, single spaces: how keywords are compared."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.split())


def resolve(layers: Iterable[VoiceLayer], extra_optout: Iterable[str] = ()) -> Voice:
    """Field by field, the first layer (most specific) that sets it, over the defaults.
    `extra_optout`: keywords a live recovery campaign adds to the opt-out list."""
    layers = list(layers)
    values: dict[str, Any] = {}
    for f in fields(VoiceLayer):
        for layer in layers:
            value = getattr(layer, f.name)
            if value is not None:
                values[f.name] = value
                break
    extra = tuple(k for k in (normalize(x) for x in extra_optout) if k)
    if extra:
        current = values.get("optout_keywords", DEFAULT_OPTOUT)
        values["optout_keywords"] = tuple(dict.fromkeys((*current, *extra)))
    return Voice(**values)


@dataclass(frozen=True, slots=True)
class OptOut:
    """The contact asked to stop proactive messages."""


@dataclass(frozen=True, slots=True)
class OptIn:
    """The contact asked to receive them again."""


def decide_keyword(voice: Voice, text: str | None, opted_out: bool) -> OptOut | OptIn | None:
    """Whether a message is an opt-out or an opt-in keyword (the whole message)."""
    if not text:
        return None
    said = normalize(text)
    if said in voice.optout_keywords:
        return OptOut()
    if said in voice.optin_keywords and opted_out:
        return OptIn()
    return None


def confirmation(voice: Voice, decision: OptOut | OptIn, language: str) -> str:
    """The one message that confirms a keyword, in the contact's language."""
    if isinstance(decision, OptOut):
        return voice.optout_confirmation or _in(OPTOUT_CONFIRMATION, language)
    return voice.optin_confirmation or _in(OPTIN_CONFIRMATION, language)


def _in(texts: Mapping[str, str], language: str) -> str:
    return texts.get(language) or texts["pt-BR"]


@dataclass(frozen=True, slots=True)
class Allow:
    """Send it now."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Too close to the last proactive message: send it at `until` instead."""

    until: datetime


@dataclass(frozen=True, slots=True)
class Refuse:
    """Never send it; `reason` says why."""

    reason: str


ProactiveDecision = Allow | Hold | Refuse


def decide_proactive(
    voice: Voice,
    *,
    group: str,
    opted_out: bool,
    last_at: datetime | None,
    last_group: str | None,
    now: datetime,
) -> ProactiveDecision:
    """May a proactive message of `group` go out now? Messages of one group (the blocks of one
    recovery step) are one message for the gap."""
    if opted_out:
        return Refuse("opted_out")
    if not voice.min_gap or last_at is None or last_group == group:
        return Allow()
    until = last_at + voice.min_gap
    return Hold(until) if now < until else Allow()


def parse_layer(data: Mapping[str, Any]) -> VoiceLayer:
    """A level's settings from the API's JSON; raise VoiceError naming the field."""
    unknown = set(data) - {f.name for f in fields(VoiceLayer)}
    if unknown:
        raise VoiceError("unknown field", sorted(unknown)[0])
    gap = None
    if data.get("min_gap") is not None:
        try:
            gap = parse_duration(str(data["min_gap"]))
        except ValueError as exc:
            raise VoiceError(str(exc), "min_gap") from exc
        if not timedelta(0) <= gap <= MAX_GAP:
            raise VoiceError(f"must be between 0s and {format_duration(MAX_GAP)}", "min_gap")
    return VoiceLayer(
        min_gap=gap,
        optout_keywords=_keywords(data, "optout_keywords"),
        optin_keywords=_keywords(data, "optin_keywords"),
        optout_confirmation=_text(data, "optout_confirmation"),
        optin_confirmation=_text(data, "optin_confirmation"),
    )


def _keywords(data: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    raw = data.get(name)
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(k, str) for k in raw):
        raise VoiceError("must be a list of strings", name)
    words = tuple(dict.fromkeys(normalize(k) for k in raw))
    if any(not w or len(w) > 64 for w in words):
        raise VoiceError("each keyword has 1 to 64 characters", name)
    return words


def _text(data: Mapping[str, Any], name: str) -> str | None:
    raw = data.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 1000:
        raise VoiceError("must be a text of 1 to 1000 characters", name)
    return raw


def voice_to_json(voice: Voice) -> dict[str, Any]:
    """The rules in force, every field set (confirmations: null = the shipped text)."""
    return {
        "min_gap": format_duration(voice.min_gap) if voice.min_gap else "0s",
        "optout_keywords": list(voice.optout_keywords),
        "optin_keywords": list(voice.optin_keywords),
        "optout_confirmation": voice.optout_confirmation,
        "optin_confirmation": voice.optin_confirmation,
    }


def layer_to_json(layer: VoiceLayer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(VoiceLayer):
        value = getattr(layer, f.name)
        if value is None:
            continue
        if isinstance(value, timedelta):
            value = format_duration(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out
