"""Organizations, their API keys, bots, media and manager-bot admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from reengage.adapters.db.models.base import Base, org_fk
from reengage.adapters.db.types import BigIntPK


class Organization(Base):
    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="pt-BR")
    # One-voice rules (opt-out keywords, minimum gap): the organization's level.
    voice: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Bot(Base):
    __tablename__ = "bot"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))
    credentials: Mapped[bytes | None] = mapped_column(LargeBinary)
    language: Mapped[str | None] = mapped_column(String(8))
    inactivity_threshold_s: Mapped[int | None] = mapped_column(Integer)
    # The shortest silence any feature of this bot acts on: when its subject timer fires.
    wake_after_s: Mapped[int | None] = mapped_column(Integer)
    entry_flow: Mapped[str | None] = mapped_column(String(64))
    # The live recovery campaign's threshold: a closed conversation's timer is armed this long
    # after the close, so recovery counts its silence from the close.
    recovery_threshold_s: Mapped[int | None] = mapped_column(Integer)
    # One-voice rules (opt-out keywords, minimum gap): the bot's level, over the organization's.
    voice: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Telegram's paid broadcast: up to 1,000 messages/s for 0.1 Star each (Telegram only).
    paid_broadcast: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime]
    # Disabled: its messages are recorded but nothing acts and nothing is sent until enabled.
    disabled_at: Mapped[datetime | None]
    # Deleted (soft): its history stays for the reports; it is found nowhere else.
    deleted_at: Mapped[datetime | None]


class MediaAsset(Base):
    """A media file stored once by reengage, uploaded to each bot at most once."""

    __tablename__ = "media_asset"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # The file's name in the media store; None for a row written before the store, whose
    # bytes are still read from `content`.
    storage_key: Mapped[str | None] = mapped_column(String(128))
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class MediaUpload(Base):
    """The platform's id of an asset for one bot (a Telegram `file_id` is per bot)."""

    __tablename__ = "media_upload"

    bot_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bot.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("media_asset.id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]


class AdminInvite(Base):
    """A one-time code an organization owner gives a person to become a manager-bot admin.
    Only the SHA-256 of the code is stored."""

    __tablename__ = "admin_invite"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by: Mapped[int | None] = mapped_column(BigInteger)


class UsedButton(Base):
    """A manager-bot button whose action is not idempotent, pressed once: a replay within its
    15 minutes is refused. Kept until the button expires."""

    __tablename__ = "used_button"
    __table_args__ = (Index("ix_used_button_expires_at", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime]


class ManagerAdmin(Base):
    """A Telegram user bound to an organization: they may use the manager bot for it."""

    __tablename__ = "manager_admin"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    org_id: Mapped[int] = org_fk()
    language: Mapped[str] = mapped_column(String(8), default="pt-BR")
    created_at: Mapped[datetime]
