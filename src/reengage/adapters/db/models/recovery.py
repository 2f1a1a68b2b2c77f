"""Recovery campaigns, their published versions, and episodes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from reengage.adapters.db.models.base import Base, org_fk
from reengage.adapters.db.types import BigIntPK


class Campaign(Base):
    """A bot's recovery campaign. `draft` is edited; `publish` freezes it as a new version."""

    __tablename__ = "recovery_campaign"
    __table_args__ = (UniqueConstraint("bot_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    bot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bot.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(default=False)
    draft: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Users never contacted: operational data, effective at once on running episodes.
    exclusions: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime]


class CampaignVersion(Base):
    """A published campaign, frozen: running episodes finish on the version they started."""

    __tablename__ = "recovery_campaign_version"
    __table_args__ = (UniqueConstraint("campaign_id", "version"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("recovery_campaign.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    published_at: Mapped[datetime]


class Episode(Base):
    """One inactivity episode of one contact: started by silence, ended by an answer, a
    payment, a stop, or the last step."""

    __tablename__ = "recovery_episode"
    __table_args__ = (
        UniqueConstraint("contact_id", "seq"),
        Index("ix_recovery_episode_campaign_id_status", "campaign_id", "status"),
        # The campaign's results: one range scan, the counted columns in the index itself.
        Index(
            "ix_recovery_episode_results",
            "campaign_id",
            "started_at",
            postgresql_include=[
                "org_id",
                "version",
                "holdout",
                "last_step",
                "status",
                "end_reason",
                "returned_at",
                "converted_at",
                "test_send",
            ],
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("recovery_campaign.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    bot_id: Mapped[int] = mapped_column(BigInteger)
    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[int | None] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)  # the activity version the silence belongs to
    holdout: Mapped[bool] = mapped_column(default=False)
    # Started by an operator for themselves ("send this campaign to me now"): not in results.
    test_send: Mapped[bool] = mapped_column(default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(16), default="running")
    end_reason: Mapped[str | None] = mapped_column(String(32))
    next_step: Mapped[int] = mapped_column(Integer, default=0)
    next_due_at: Mapped[datetime | None]
    last_sent_at: Mapped[datetime | None]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # Attribution: the last step the contact received, until when a return / a payment is
    # credited to it, and the return and the payment credited (domain/results.py).
    last_step: Mapped[int | None] = mapped_column(Integer)
    return_until: Mapped[datetime | None]
    convert_until: Mapped[datetime | None]
    returned_at: Mapped[datetime | None]
    converted_at: Mapped[datetime | None]
