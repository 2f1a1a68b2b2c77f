"""Who may use the manager bot: invite codes, and the admins they bind to an organization."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import AdminInvite, ManagerAdmin, Organization, UsedButton
from reengage.adapters.db.session import insert_for
from reengage.i18n import N_
from reengage.services.errors import InvalidInput, NotFound
from reengage.services.tenancy import scoped

log = structlog.get_logger(__name__)

INVITE_TTL = timedelta(days=7)
LANGUAGES = ("pt-BR", "en")


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def create_invite(
    session: Session, org_id: int, now: datetime, ttl: timedelta = INVITE_TTL
) -> tuple[str, datetime]:
    """A one-time invite code (shown once, stored hashed) and when it expires."""
    if session.get(Organization, org_id) is None:
        raise NotFound(N_("organization {org_id} does not exist"), "org_id", org_id=org_id)
    code = secrets.token_urlsafe(18)
    expires_at = now + ttl
    session.add(
        AdminInvite(org_id=org_id, code_hash=_hash(code), created_at=now, expires_at=expires_at)
    )
    session.flush()
    log.info("manager.invite.created", org_id=org_id, expires_at=expires_at.isoformat())
    return code, expires_at


def redeem_invite(
    session: Session, code: str, telegram_user_id: int, language: str, now: datetime
) -> ManagerAdmin:
    """Bind a Telegram user to the invite's organization; a code works once, until it expires."""
    invite = session.scalar(  # unscoped: the code itself names the organization
        select(AdminInvite).where(AdminInvite.code_hash == _hash(code)).with_for_update()
    )
    if invite is None or invite.used_at is not None or invite.expires_at <= now:
        log.warning("manager.invite.refused", telegram_user_id=telegram_user_id)
        raise InvalidInput(N_("invalid, used or expired invite code"), "code")
    invite.used_at, invite.used_by = now, telegram_user_id
    # unscoped: a Telegram user is an admin of at most one organization; redeeming moves them
    admin = session.get(ManagerAdmin, telegram_user_id)
    if admin is None:
        admin = ManagerAdmin(
            telegram_user_id=telegram_user_id,
            org_id=invite.org_id,
            language=language if language in LANGUAGES else "pt-BR",
            created_at=now,
        )
        session.add(admin)
    admin.org_id = invite.org_id
    session.flush()
    log.info("manager.admin.bound", org_id=invite.org_id, telegram_user_id=telegram_user_id)
    return admin


def admin_of(session: Session, telegram_user_id: int) -> ManagerAdmin | None:
    """Whose organization a Telegram user manages (the manager bot's authentication)."""
    return session.get(ManagerAdmin, telegram_user_id)  # unscoped: this finds the organization


def set_language(session: Session, telegram_user_id: int, language: str) -> None:
    if language not in LANGUAGES:
        raise InvalidInput(
            N_("language must be one of {languages}"), "language", languages=", ".join(LANGUAGES)
        )
    admin = session.get(ManagerAdmin, telegram_user_id)  # unscoped: the admin's own setting
    if admin is None:
        raise NotFound(N_("not an admin"), "telegram_user_id")
    admin.language = language


def remove_admin(session: Session, org_id: int, telegram_user_id: int) -> None:
    """An admin of this organization loses the manager bot at once (their next press or
    message is refused, even with buttons still inside their 15 minutes)."""
    admin = session.scalar(
        scoped(ManagerAdmin, org_id, ManagerAdmin.telegram_user_id == telegram_user_id)
    )
    if admin is None:
        raise NotFound(
            N_("admin {telegram_user_id} not found"),
            "telegram_user_id",
            telegram_user_id=telegram_user_id,
        )
    session.delete(admin)
    log.info("manager.admin.removed", org_id=org_id, telegram_user_id=telegram_user_id)


def list_admins(session: Session, org_id: int) -> list[ManagerAdmin]:
    return list(session.scalars(scoped(ManagerAdmin, org_id).order_by(ManagerAdmin.created_at)))


def use_button(session: Session, data: str, now: datetime, ttl: timedelta) -> bool:
    """Spend a single-use button: True the first time, False for a replay within its life.
    Spent buttons are forgotten once they would have expired anyway."""
    session.execute(delete(UsedButton).where(UsedButton.expires_at < now))
    token = hashlib.sha256(data.encode()).hexdigest()
    stmt = insert_for(session, UsedButton).values(token_hash=token, expires_at=now + ttl)
    spent = session.execute(stmt.on_conflict_do_nothing().returning(UsedButton.token_hash))
    return spent.first() is not None
