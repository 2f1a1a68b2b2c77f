"""Organizations, API keys and bots: who owns what."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.crypto import encrypt_json, hash_api_key, new_api_key
from reengage.adapters.db.models import ApiKey, Bot, Organization
from reengage.domain.activity import ChannelKind
from reengage.services.errors import NotFound, Unauthorized


@dataclass(frozen=True, slots=True)
class NewOrganization:
    org_id: int
    api_key: str


def create_organization(
    sessions: sessionmaker[Session], name: str, now: datetime, language: str = "pt-BR"
) -> NewOrganization:
    """Create an organization and its first API key (shown once, stored hashed)."""
    with sessions.begin() as session:
        org = Organization(name=name, language=language, created_at=now)
        session.add(org)
        session.flush()
        key = _add_api_key(session, org.id, "default", now)
        return NewOrganization(org.id, key)


def issue_api_key(sessions: sessionmaker[Session], org_id: int, name: str, now: datetime) -> str:
    with sessions.begin() as session:
        if session.get(Organization, org_id) is None:
            raise NotFound(f"organization {org_id} does not exist", "org_id")
        return _add_api_key(session, org_id, name, now)


def _add_api_key(session: Session, org_id: int, name: str, now: datetime) -> str:
    plaintext, prefix, digest = new_api_key()
    session.add(ApiKey(org_id=org_id, name=name, prefix=prefix, key_hash=digest, created_at=now))
    return plaintext


def authenticate(session: Session, plaintext: str) -> int:
    """The organization an API key belongs to."""
    row = session.execute(
        select(ApiKey.org_id).where(
            ApiKey.key_hash == hash_api_key(plaintext), ApiKey.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        raise Unauthorized("invalid or revoked API key")
    return int(row[0])


def create_bot(
    sessions: sessionmaker[Session],
    secret_key: str,
    org_id: int,
    *,
    name: str,
    channel: ChannelKind,
    now: datetime,
    credentials: dict[str, Any] | None = None,
    inactivity_threshold: timedelta | None = None,
) -> Bot:
    """Register a bot; its credentials are encrypted before they reach the database."""
    with sessions.begin() as session:
        bot = Bot(
            org_id=org_id,
            name=name,
            channel=channel.value,
            credentials=encrypt_json(secret_key, credentials) if credentials else None,
            inactivity_threshold_s=(
                None if inactivity_threshold is None else int(inactivity_threshold.total_seconds())
            ),
            created_at=now,
        )
        session.add(bot)
        session.flush()
        return bot


def get_bot(session: Session, org_id: int, bot_id: int) -> Bot:
    bot = session.scalar(select(Bot).where(Bot.org_id == org_id, Bot.id == bot_id))
    if bot is None:
        raise NotFound(f"bot {bot_id} not found", "bot_id")
    return bot


def list_bots(session: Session, org_id: int) -> list[Bot]:
    """The organization's bots, oldest first."""
    return list(session.scalars(select(Bot).where(Bot.org_id == org_id).order_by(Bot.id)))
