"""Console users: accounts per organization, logins as sessions, invitations."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import ConsoleInvite, ConsoleSession, ConsoleUser, Organization
from reengage.adapters.passwords import hash_password, verify_password
from reengage.domain.console_access import Role
from reengage.i18n import N_
from reengage.services.audit_log import record_change
from reengage.services.errors import InvalidInput, NotFound, Unauthorized
from reengage.services.tenancy import scoped

INVITE_TTL = timedelta(days=7)
PASSWORD_MIN, PASSWORD_MAX = 10, 128


@dataclass(frozen=True, slots=True)
class SessionUser:
    """Who a console request comes from."""

    user_id: int
    org_id: int
    email: str
    role: Role
    csrf_token: str
    org_name: str


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str  # the cookie's value: shown to the browser once, stored hashed
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normal_email(email: str) -> str:
    """An email as stored (trimmed, lower case); InvalidInput when it is not one."""
    value = email.strip().lower()
    local, at, domain = value.partition("@")
    if not (at and local and "." in domain and len(value) <= 254) or any(
        c.isspace() or c == "\x00" for c in value
    ):
        raise InvalidInput(N_("enter a valid email address"), "email")
    return value


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX or "\x00" in password:
        raise InvalidInput(
            N_("the password needs {PASSWORD_MIN} to {PASSWORD_MAX} characters"),
            "password",
            PASSWORD_MIN=PASSWORD_MIN,
            PASSWORD_MAX=PASSWORD_MAX,
        )
    return password


def create_user(
    session: Session, org_id: int, email: str, password: str, role: Role, now: datetime
) -> ConsoleUser:
    """Add a person to the organization (the email is unique across organizations)."""
    address = normal_email(email)
    check_password(password)
    if session.get(Organization, org_id) is None:
        raise NotFound(N_("organization {org_id} does not exist"), "org_id", org_id=org_id)
    # unscoped: an email logs in to exactly one organization, whichever it is
    if session.scalar(select(ConsoleUser.id).where(ConsoleUser.email == address)) is not None:
        raise InvalidInput(N_("this email already has an account"), "email")
    user = ConsoleUser(
        org_id=org_id,
        email=address,
        password_hash=hash_password(password),
        role=role.value,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def open_session(session: Session, user: ConsoleUser, now: datetime, ttl: timedelta) -> NewSession:
    token = secrets.token_urlsafe(32)
    expires = now + ttl
    session.add(
        ConsoleSession(
            token_hash=_digest(token),
            org_id=user.org_id,
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=expires,
        )
    )
    return NewSession(token, expires)


def log_in(
    sessions: sessionmaker[Session], email: str, password: str, now: datetime, ttl: timedelta
) -> NewSession:
    """A new session for the account, or Unauthorized (the same answer for an unknown email
    and a wrong password, in about the same time)."""
    address = email.strip().lower()
    with sessions.begin() as session:
        # unscoped: the email names the organization
        user = session.scalar(select(ConsoleUser).where(ConsoleUser.email == address))
        stored = user.password_hash if user is not None else None
        if not verify_password(stored, password) or user is None or user.disabled_at:
            raise Unauthorized(N_("wrong email or password"))
        # Expired sessions go when their user next logs in: the table does not grow.
        session.execute(  # unscoped: the user's own rows, found by their email
            delete(ConsoleSession).where(
                ConsoleSession.user_id == user.id, ConsoleSession.expires_at <= now
            )
        )
        return open_session(session, user, now, ttl)


def session_user(sessions: sessionmaker[Session], token: str, now: datetime) -> SessionUser | None:
    """Who holds this session cookie, while it lasts."""
    if not token or len(token) > 100:
        return None
    stmt = (  # unscoped: the session cookie names the organization
        select(ConsoleSession, ConsoleUser, Organization.name)
        .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
        .join(Organization, Organization.id == ConsoleUser.org_id)
        .where(ConsoleSession.token_hash == _digest(token), ConsoleSession.expires_at > now)
    )
    with sessions() as session:
        row = session.execute(stmt).first()
    if row is None or row[1].disabled_at is not None:
        return None
    login, user, org_name = row
    return SessionUser(
        user.id, user.org_id, user.email, Role(user.role), login.csrf_token, org_name
    )


def log_out(sessions: sessionmaker[Session], token: str) -> None:
    with sessions.begin() as session:
        # unscoped: the cookie's own row
        session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))


def create_invite(
    sessions: sessionmaker[Session],
    org_id: int,
    role: Role,
    by: int | None,
    now: datetime,
    actor: str | None = None,
) -> str:
    """A one-time invitation token for a new person with `role` (valid for 7 days); with
    `actor`, written to the audit log."""
    token = secrets.token_urlsafe(24)
    with sessions.begin() as session:
        if actor is not None:
            after = {"role": role.value}
            record_change(session, org_id, actor, "user.invite", role.value, now, after=after)
        session.add(
            ConsoleInvite(
                org_id=org_id,
                token_hash=_digest(token),
                role=role.value,
                created_by=by,
                created_at=now,
                expires_at=now + INVITE_TTL,
            )
        )
    return token


def _open_invite(session: Session, token: str, now: datetime) -> ConsoleInvite | None:
    if not token or len(token) > 100:
        return None
    # unscoped: the invitation's token names the organization
    stmt = select(ConsoleInvite).where(
        ConsoleInvite.token_hash == _digest(token),
        ConsoleInvite.used_at.is_(None),
        ConsoleInvite.expires_at > now,
    )
    return session.scalar(stmt)


def invite_role(sessions: sessionmaker[Session], token: str, now: datetime) -> Role | None:
    """The role an open invitation grants, or None (unknown, used or expired)."""
    with sessions() as session:
        invite = _open_invite(session, token, now)
        return Role(invite.role) if invite is not None else None


def accept_invite(
    sessions: sessionmaker[Session],
    token: str,
    email: str,
    password: str,
    now: datetime,
    ttl: timedelta,
) -> tuple[ConsoleUser, NewSession]:
    """Create the invitee's account, use up the invitation and log them in."""
    with sessions.begin() as session:
        invite = _open_invite(session, token, now)
        if invite is None:
            raise NotFound(N_("this invitation is unknown, used or expired"), "invite")
        user = create_user(session, invite.org_id, email, password, Role(invite.role), now)
        invite.used_at, invite.used_by = now, user.id
        record_change(
            session,
            user.org_id,
            f"user {user.email}",
            "user.join",
            user.email,
            now,
            after={"role": user.role},
        )
        return user, open_session(session, user, now, ttl)


def list_users(session: Session, org_id: int) -> list[ConsoleUser]:
    return list(session.scalars(scoped(ConsoleUser, org_id).order_by(ConsoleUser.id)))


def list_invites(session: Session, org_id: int, now: datetime) -> list[ConsoleInvite]:
    """The organization's invitations still open."""
    stmt = scoped(
        ConsoleInvite, org_id, ConsoleInvite.used_at.is_(None), ConsoleInvite.expires_at > now
    )
    return list(session.scalars(stmt.order_by(ConsoleInvite.id)))
