"""Organizations, API keys and bots: who owns what; and the one way tenants' queries are
scoped to their organization (`scoped`, `owned`; a test keeps every query on a tenant table
going through them where tenants can reach it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Delete, Select, Update, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.crypto import Credentials, hash_api_key, new_api_key
from reengage.adapters.db.models import ApiKey, Bot, Organization
from reengage.domain.activity import ChannelKind
from reengage.services.audit_log import record_change
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


def issue_api_key(
    sessions: sessionmaker[Session],
    org_id: int,
    name: str,
    now: datetime,
    actor: str | None = None,
) -> str:
    """A new API key (its plaintext, shown once); `actor` writes the change to the audit
    log."""
    with sessions.begin() as session:
        if session.get(Organization, org_id) is None:
            raise NotFound(f"organization {org_id} does not exist", "org_id")
        plaintext = _add_api_key(session, org_id, name, now)
        if actor is not None:
            after = {"name": name, "prefix": plaintext.split("_")[1]}
            record_change(session, org_id, actor, "api_key.create", name, now, after=after)
        return plaintext


def _add_api_key(session: Session, org_id: int, name: str, now: datetime) -> str:
    plaintext, prefix, digest = new_api_key()
    session.add(ApiKey(org_id=org_id, name=name, prefix=prefix, key_hash=digest, created_at=now))
    return plaintext


def list_api_keys(session: Session, org_id: int) -> list[ApiKey]:
    """The organization's API keys (revoked ones too), newest first."""
    return list(session.scalars(scoped(ApiKey, org_id).order_by(ApiKey.id.desc())))


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


def key_is_valid(session: Session, org_id: int, digest: str) -> bool:
    """Whether the organization holds this (hashed) key, unrevoked."""
    stmt = scoped_columns(ApiKey, org_id, ApiKey.id).where(
        ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)
    )
    return session.execute(stmt).first() is not None


def revoke_api_key(
    sessions: sessionmaker[Session],
    org_id: int,
    key_id: int,
    now: datetime,
    actor: str | None = None,
) -> None:
    """Revoke one of the organization's API keys; every API process refuses it from its next
    request on."""
    with sessions.begin() as session:
        key = owned(session, ApiKey, org_id, key_id, field="key_id")
        if key.revoked_at is None:
            key.revoked_at = now
            if actor is not None:
                record_change(
                    session,
                    org_id,
                    actor,
                    "api_key.revoke",
                    f"rg_{key.prefix} ({key.name})",
                    now,
                    before={"revoked": False},
                    after={"revoked": True},
                )


def create_bot(
    sessions: sessionmaker[Session],
    credentials_of: Credentials,
    org_id: int,
    *,
    name: str,
    channel: ChannelKind,
    now: datetime,
    credentials: dict[str, Any] | None = None,
    inactivity_threshold: timedelta | None = None,
    paid_broadcast: bool = False,
    actor: str | None = None,
) -> Bot:
    """Register a bot; its credentials are encrypted before they reach the database. With
    `actor`, the change goes to the audit log (never the credentials)."""
    with sessions.begin() as session:
        bot = Bot(
            org_id=org_id,
            name=name,
            channel=channel.value,
            credentials=credentials_of.encrypt(credentials) if credentials else None,
            inactivity_threshold_s=(
                None if inactivity_threshold is None else int(inactivity_threshold.total_seconds())
            ),
            paid_broadcast=paid_broadcast,
            created_at=now,
        )
        session.add(bot)
        session.flush()
        if actor is not None:
            record_change(
                session, org_id, actor, "bot.create", f"bot {bot.id}", now, after=bot_summary(bot)
            )
        return bot


def bot_summary(bot: Bot) -> dict[str, Any]:
    """What the audit log keeps of a bot: its settings, never its credentials."""
    return {
        "name": bot.name,
        "channel": bot.channel,
        "has_credentials": bot.credentials is not None,
        "inactivity_threshold_s": bot.inactivity_threshold_s,
        "paid_broadcast": bot.paid_broadcast,
    }


M = TypeVar("M")


def scoped(model: type[M], org_id: int, *criteria: Any) -> Select[tuple[M]]:
    """The organization's rows of a tenant table (meeting `criteria`)."""
    return select(model).where(_org(model) == org_id, *criteria)


def scoped_columns(model: type[Any], org_id: int, *columns: Any) -> Select[Any]:
    """Some columns of the organization's rows of a tenant table."""
    return select(*columns).where(_org(model) == org_id)


def scoped_update(model: type[Any], org_id: int, *criteria: Any) -> Update:
    """Change the organization's rows of a tenant table (meeting `criteria`)."""
    return update(model).where(_org(model) == org_id, *criteria)


def scoped_delete(model: type[Any], org_id: int, *criteria: Any) -> Delete:
    """Delete the organization's rows of a tenant table (meeting `criteria`)."""
    return delete(model).where(_org(model) == org_id, *criteria)


def owned(
    session: Session,
    model: type[M],
    org_id: int,
    row_id: int,
    *,
    field: str = "id",
    for_update: bool = False,
) -> M:
    """One of the organization's rows by id; NotFound (naming `field`) for anyone else's."""
    stmt = scoped(model, org_id, model.id == row_id)  # type: ignore[attr-defined]
    row = session.scalar(stmt.with_for_update() if for_update else stmt)
    if row is None:
        noun = model.__tablename__.replace("_", " ")  # type: ignore[attr-defined]
        raise NotFound(f"{noun} {row_id} not found", field)
    return row


def _org(model: type[Any]) -> Any:
    return model.org_id


def get_bot(session: Session, org_id: int, bot_id: int) -> Bot:
    return owned(session, Bot, org_id, bot_id, field="bot_id")


def list_bots(session: Session, org_id: int) -> list[Bot]:
    """The organization's bots, oldest first."""
    return list(session.scalars(scoped(Bot, org_id).order_by(Bot.id)))
