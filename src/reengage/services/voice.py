"""One voice per contact: the rules in force for a bot, and their settings at two levels."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from reengage.adapters.db.models import Bot, Organization
from reengage.domain import voice as vc
from reengage.i18n import N_
from reengage.services.errors import InvalidInput, parsing
from reengage.services.tenancy import get_bot


def voice_for(session: Session, bot: Bot, extra_optout: tuple[str, ...] = ()) -> vc.Voice:
    """The rules for a bot's contacts: the bot's settings over its organization's."""
    org = session.get_one(Organization, bot.org_id)
    layers = [vc.parse_layer(bot.voice or {}), vc.parse_layer(org.voice or {})]
    return vc.resolve(layers, extra_optout)


def get_settings(session: Session, org_id: int, bot_id: int | None) -> dict[str, Any]:
    """One level's stored settings (the organization's when `bot_id` is None)."""
    if bot_id is None:
        return dict(session.get_one(Organization, org_id).voice or {})
    return dict(get_bot(session, org_id, bot_id).voice or {})


def put_settings(
    session: Session, org_id: int, bot_id: int | None, data: dict[str, Any]
) -> dict[str, Any]:
    """Validate and store one level's settings; fields left out are inherited."""
    with parsing(N_("the voice settings are malformed: {problem}")):
        try:
            layer = vc.parse_layer(data)
        except vc.VoiceError as exc:
            raise InvalidInput(exc.message, exc.field) from exc
    stored = vc.layer_to_json(layer)
    if bot_id is None:
        session.get_one(Organization, org_id).voice = stored
    else:
        get_bot(session, org_id, bot_id).voice = stored
    return stored


def resolved(session: Session, org_id: int, bot_id: int) -> dict[str, Any]:
    """The rules in force for a bot, every field set."""
    return vc.voice_to_json(voice_for(session, get_bot(session, org_id, bot_id)))
