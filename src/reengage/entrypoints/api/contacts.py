"""Contacts and the one-voice rules: who a bot talks to, and how often it may speak first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field, field_validator

from reengage.adapters.db.models import Contact
from reengage.domain.contact import valid_zone
from reengage.entrypoints.api.deps import Actor, OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, Id, JsonObject, Text, UserId
from reengage.services import voice
from reengage.services.audit_log import record_change
from reengage.services.contacts import ContactChange, change_contact, find_contact

contacts_router = APIRouter(
    tags=["contacts"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


class ContactOut(BaseModel):
    id: int
    bot_id: int
    user_id: str
    name: str | None
    language: str | None
    time_zone: str | None
    opted_out_at: datetime | None
    blocked_at: datetime | None
    paid_at: datetime | None
    created_at: datetime


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    time_zone: Text | None = Field(
        default=None, max_length=64, description="IANA zone; recovery steps at a time of day use it"
    )
    language: Literal["pt-BR", "en"] | None = Field(
        default=None, description="The language of the texts reengage writes to them"
    )
    opted_out: bool | None = Field(
        default=None, description="true: no proactive message reaches them; false: back in"
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and not valid_zone(value):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name: America/Sao_Paulo)")
        return value


def _out(contact: Contact) -> ContactOut:
    return ContactOut(
        id=contact.id,
        bot_id=contact.bot_id,
        user_id=contact.external_id,
        name=contact.name,
        language=contact.language,
        time_zone=contact.time_zone,
        opted_out_at=contact.opted_out_at,
        blocked_at=contact.blocked_at,
        paid_at=contact.paid_at,
        created_at=contact.created_at,
    )


@contacts_router.get("/v1/bots/{bot_id}/contacts/{user_id}", response_model=ContactOut)
def get_contact(runtime: RuntimeDep, org_id: OrgId, bot_id: Id, user_id: UserId) -> ContactOut:
    """One contact of a bot, by their id on the channel."""
    with runtime.sessions() as session:
        return _out(find_contact(session, org_id, bot_id, user_id))


@contacts_router.patch("/v1/bots/{bot_id}/contacts/{user_id}", response_model=ContactOut)
def patch_contact(
    runtime: RuntimeDep, org_id: OrgId, bot_id: Id, user_id: UserId, body: ContactIn
) -> ContactOut:
    """Set a contact's name, time zone, language or opt-out; a contact reengage has not seen
    yet is created (their zone can be known before their first message)."""
    change = ContactChange(body.name, body.time_zone, body.language, body.opted_out)
    with runtime.sessions.begin() as session:
        contact = change_contact(session, org_id, bot_id, user_id, change, runtime.clock.now())
        return _out(contact)


class VoiceOut(BaseModel):
    settings: dict[str, Any] = Field(description="What this level sets (the rest is inherited)")
    resolved: dict[str, Any] | None = Field(
        default=None, description="A bot's rules in force: its level over the organization's"
    )


_VOICE_DOC = (
    "Fields (each optional; unset = inherited): `min_gap` (e.g. `2h`: no two proactive "
    "messages to one contact closer than this, whatever feature sends them; `0s` = off), "
    "`optout_keywords` and `optin_keywords` (whole messages, without case or accents), "
    "`optout_confirmation` and `optin_confirmation` (the reply; default in the contact's "
    "language)."
)


@contacts_router.get("/v1/voice", response_model=VoiceOut)
def get_org_voice(runtime: RuntimeDep, org_id: OrgId) -> VoiceOut:
    """The organization's one-voice rules (opt-out keywords, minimum gap)."""
    with runtime.sessions() as session:
        return VoiceOut(settings=voice.get_settings(session, org_id, None))


@contacts_router.put("/v1/voice", response_model=VoiceOut, description=_VOICE_DOC)
def put_org_voice(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, body: Annotated[JsonObject, Body()]
) -> VoiceOut:
    """Set the organization's one-voice rules."""
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        before = voice.get_settings(session, org_id, None)
        stored = voice.put_settings(session, org_id, None, body)
        record_change(
            session, org_id, actor, "voice.put", "organization", now, before=before, after=stored
        )
        return VoiceOut(settings=stored)


@contacts_router.get("/v1/bots/{bot_id}/voice", response_model=VoiceOut)
def get_bot_voice(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> VoiceOut:
    """A bot's one-voice settings, and the rules in force for its contacts."""
    with runtime.sessions() as session:
        return VoiceOut(
            settings=voice.get_settings(session, org_id, bot_id),
            resolved=voice.resolved(session, org_id, bot_id),
        )


@contacts_router.put("/v1/bots/{bot_id}/voice", response_model=VoiceOut, description=_VOICE_DOC)
def put_bot_voice(
    runtime: RuntimeDep,
    org_id: OrgId,
    actor: Actor,
    bot_id: Id,
    body: Annotated[JsonObject, Body()],
) -> VoiceOut:
    """Set a bot's one-voice rules (over the organization's)."""
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        before = voice.get_settings(session, org_id, bot_id)
        stored = voice.put_settings(session, org_id, bot_id, body)
        record_change(
            session, org_id, actor, "voice.put", f"bot {bot_id}", now, before=before, after=stored
        )
        session.flush()
        return VoiceOut(settings=stored, resolved=voice.resolved(session, org_id, bot_id))
