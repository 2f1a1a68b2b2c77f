"""Organizations, API keys and bots: who owns what; and the one way tenants' queries are
scoped to their organization (`scoped`, `owned`; a test keeps every query on a tenant table
going through them where tenants can reach it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Delete, Select, Update, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.channels.factory import missing_credentials
from reengage.adapters.crypto import Credentials, hash_api_key, new_api_key
from reengage.adapters.db.models import ApiKey, Bot, Organization
from reengage.domain.activity import ChannelKind
from reengage.i18n import N_
from reengage.services.audit_log import record_change
from reengage.services.errors import InvalidInput, NotFound, Unauthorized


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
            raise NotFound(N_("organization {org_id} does not exist"), "org_id", org_id=org_id)
        plaintext = _add_api_key(session, org_id, name, now)
        if actor is not None:
            after = {"name": name, "prefix": plaintext.split("_")[1]}
            record_change(session, org_id, actor, "api_key.create", name, now, after=after)
        return plaintext


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
        raise Unauthorized(N_("invalid or revoked API key"))
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


def list_organizations(session: Session) -> list[Organization]:
    """Every organization, oldest first (the operator's `reengage orgs list`)."""
    # unscoped: the operator's command, over every organization
    return list(session.scalars(select(Organization).order_by(Organization.id)))


def list_api_keys(session: Session, org_id: int, prefix: str | None = None) -> list[ApiKey]:
    """The organization's API keys (revoked ones too), oldest first; with `prefix`, the
    keys whose display prefix (`rg_<prefix>_...`) starts with it."""
    stmt = scoped(ApiKey, org_id)
    if prefix:
        stmt = stmt.where(ApiKey.prefix.startswith(prefix, autoescape=True))
    return list(session.scalars(stmt.order_by(ApiKey.id)))


def revoke_api_key_by_prefix(
    sessions: sessionmaker[Session], org_id: int, prefix: str, now: datetime
) -> ApiKey:
    """Revoke the organization's API key shown as `rg_<prefix>_...` (the whole 8-character
    prefix); refused at once by every API process (the configuration stamp moves)."""
    with sessions.begin() as session:
        key = session.scalar(scoped(ApiKey, org_id, ApiKey.prefix == prefix).with_for_update())
        if key is None:
            raise NotFound(N_("API key {prefix} not found"), "prefix", prefix=prefix)
        if key.revoked_at is None:
            key.revoked_at = now
        session.flush()
        session.expunge(key)
        return key


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


TOKEN_FIELD = {ChannelKind.TELEGRAM: "token", ChannelKind.WHATSAPP: "access_token"}


def rotate_token(
    sessions: sessionmaker[Session],
    credentials_of: Credentials,
    org_id: int,
    bot_id: int,
    token: str,
    actor: Actor = None,
) -> Bot:
    """Replace the platform token of a Telegram or WhatsApp bot, keeping its other
    credentials."""
    with sessions() as session:
        channel = ChannelKind(get_bot(session, org_id, bot_id).channel)
    field = TOKEN_FIELD.get(channel)
    if field is None:
        raise InvalidInput(
            N_("{value} bots have no token; replace their credentials"), value=channel.value
        )
    changed = {field: token}
    return replace_credentials(sessions, credentials_of, org_id, bot_id, changed, True, actor)


# Who made a change and when, for the audit log (None: not logged).
Actor = tuple[str, datetime] | None


class Unset:
    """No change asked (distinct from None, which means the default)."""


UNSET = Unset()


def update_bot(
    sessions: sessionmaker[Session],
    org_id: int,
    bot_id: int,
    *,
    name: str | None = None,
    inactivity_threshold: timedelta | None | Unset = UNSET,
    actor: Actor = None,
) -> Bot:
    """Rename a bot or change its inactivity threshold (None: the default). The threshold
    applies from each conversation's next event on; timers already armed keep their time."""
    with sessions.begin() as session:
        bot = live_bot(session, org_id, bot_id, for_update=True)
        before = bot_summary(bot)
        if name is not None:
            bot.name = name
        if not isinstance(inactivity_threshold, Unset):
            bot.inactivity_threshold_s = (
                None if inactivity_threshold is None else int(inactivity_threshold.total_seconds())
            )
        if actor is not None:
            who, now = actor
            after = bot_summary(bot)
            record_change(
                session, org_id, who, "bot.update", f"bot {bot_id}", now, before=before, after=after
            )
        session.flush()
        session.expunge(bot)
        return bot


def replace_credentials(
    sessions: sessionmaker[Session],
    credentials_of: Credentials,
    org_id: int,
    bot_id: int,
    credentials: dict[str, Any],
    merge: bool = False,
    actor: Actor = None,
) -> Bot:
    """Replace a bot's credentials (with `merge`, only the fields given: a rotated token
    keeps the rest). Every send from the next one on uses them; a Telegram bot then needs its
    webhook registered again. InvalidInput naming the first required field missing."""
    with sessions.begin() as session:
        bot = live_bot(session, org_id, bot_id, for_update=True)
        if merge:
            credentials = credentials_of.of(bot.id, bot.credentials) | credentials
        missing = missing_credentials(ChannelKind(bot.channel), credentials)
        if missing:
            raise InvalidInput(
                N_("{channel} bots need credentials.{name}"),
                f"credentials.{missing[0]}",
                channel=ChannelKind(bot.channel).value,
                name=missing[0],
            )
        had = bot.credentials is not None
        bot.credentials = credentials_of.encrypt(credentials) if credentials else None
        if actor is not None:
            who, now = actor
            record_change(
                session,
                org_id,
                who,
                "bot.credentials",
                f"bot {bot_id}",
                now,
                before={"has_credentials": had},
                after={"has_credentials": bot.credentials is not None},
            )
        session.flush()
        session.expunge(bot)
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
        raise NotFound(N_("{noun} {row_id} not found"), field, noun=noun, row_id=row_id)
    return row


def _org(model: type[Any]) -> Any:
    return model.org_id


def get_bot(session: Session, org_id: int, bot_id: int) -> Bot:
    return live_bot(session, org_id, bot_id)


def live_bot(session: Session, org_id: int, bot_id: int, *, for_update: bool = False) -> Bot:
    """One of the organization's bots, not deleted; NotFound otherwise (a deleted bot's id
    answers 404 everywhere)."""
    stmt = scoped(Bot, org_id, Bot.id == bot_id, LIVE_BOT)
    bot = session.scalar(stmt.with_for_update() if for_update else stmt)
    if bot is None:
        raise NotFound(N_("{noun} {row_id} not found"), "bot_id", noun="bot", row_id=bot_id)
    return bot


# The bots that exist for their organization: a deleted bot's row stays only for history.
LIVE_BOT = Bot.deleted_at.is_(None)


def list_bots(session: Session, org_id: int) -> list[Bot]:
    """The organization's bots (not deleted), oldest first."""
    return list(session.scalars(scoped(Bot, org_id, LIVE_BOT).order_by(Bot.id)))
