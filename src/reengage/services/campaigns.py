"""Recovery campaigns: drafts and published versions, episodes, and their steps."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from reengage import metrics
from reengage.adapters.db.models import (
    Campaign,
    CampaignVersion,
    Contact,
    Episode,
    MediaAsset,
)
from reengage.domain import recovery as rec
from reengage.domain.activity import ChannelKind
from reengage.events.outbox import emit_episodes_ended
from reengage.i18n import N_
from reengage.services.errors import InvalidInput, NotFound, parsing
from reengage.services.tenancy import get_bot, scoped, scoped_columns, scoped_update
from reengage.services.wake import refresh_wake

log = structlog.get_logger(__name__)


def _campaign(
    session: Session, org_id: int, bot_id: int, create: bool = False, now: datetime | None = None
) -> Campaign:
    get_bot(session, org_id, bot_id)
    row = session.scalar(scoped(Campaign, org_id, Campaign.bot_id == bot_id))
    if row is None:
        if not create or now is None:
            raise NotFound(N_("bot {bot_id} has no campaign"), "bot_id", bot_id=bot_id)
        row = Campaign(
            org_id=org_id,
            bot_id=bot_id,
            enabled=False,
            draft={},
            version=0,
            exclusions=[],
            updated_at=now,
        )
        session.add(row)
    return row


def put_draft(
    session: Session, org_id: int, bot_id: int, data: dict[str, Any], now: datetime
) -> Campaign:
    """Validate and store the draft (what `publish` will freeze). `exclusions`, if given, are
    operational: they take effect at once (see `set_exclusions`), not at publication."""
    data = dict(data)
    exclusions = data.pop("exclusions", None)
    with parsing(N_("the campaign is malformed: {problem}")):
        try:
            campaign = rec.parse_campaign(data)
        except rec.CampaignError as exc:
            raise InvalidInput(exc.message, exc.field) from exc
    channel = get_bot(session, org_id, bot_id).channel
    for i, step in enumerate(campaign.steps):
        for j, block in enumerate(step.blocks):
            if block.template is not None and channel != ChannelKind.WHATSAPP.value:
                raise InvalidInput(
                    N_("template blocks are for WhatsApp bots"), f"steps[{i}].blocks[{j}].kind"
                )
            if (
                block.asset_id is not None
                and session.scalar(scoped(MediaAsset, org_id, MediaAsset.id == block.asset_id))
                is None
            ):
                raise InvalidInput(
                    N_("media asset {asset_id} not found"),
                    f"steps[{i}].blocks[{j}].asset_id",
                    asset_id=block.asset_id,
                )
    row = _campaign(session, org_id, bot_id, create=True, now=now)
    row.draft, row.updated_at = data, now
    if exclusions is not None:
        if not isinstance(exclusions, list):
            raise InvalidInput(N_("must be a list of user ids"), "exclusions")
        set_exclusions(session, org_id, bot_id, [str(u) for u in exclusions], now)
    session.flush()
    return row


def warnings(session: Session, row: Campaign, language: str = "pt-BR") -> list[str]:
    """What an operator should know about the draft before publishing it: on WhatsApp, steps
    that can fall outside the 24-hour window without a template."""
    bot = get_bot(session, row.org_id, row.bot_id)
    if bot.channel != ChannelKind.WHATSAPP.value:
        return []
    try:
        return rec.window_warnings(rec.parse_campaign(row.draft), language)
    except rec.CampaignError:  # pragma: no cover - drafts are validated
        return []


def set_exclusions(
    session: Session, org_id: int, bot_id: int, users: list[str], now: datetime
) -> Campaign:
    """Replace the users the campaign never contacts; a running episode of a newly excluded
    user stops at once (`stopped/excluded`), before its next step."""
    row = _campaign(session, org_id, bot_id, create=True, now=now)
    added = set(users) - set(row.exclusions or ())
    row.exclusions, row.updated_at = list(dict.fromkeys(users)), now
    if added:
        contacts = scoped_columns(Contact, org_id, Contact.id).where(
            Contact.bot_id == bot_id, Contact.external_id.in_(sorted(added))
        )
        stopped = (
            session.execute(
                scoped_update(
                    Episode,
                    org_id,
                    Episode.campaign_id == row.id,
                    Episode.status == "running",
                    Episode.contact_id.in_(contacts),
                )
                .values(status="stopped", end_reason="excluded", ended_at=now, next_due_at=None)
                .returning(Episode.id)
            )
            .scalars()
            .all()
        )
        metrics.episodes_ended("stopped", "excluded", len(stopped))
        emit_episodes_ended(session, [(org_id, i, "stopped", "excluded") for i in stopped], now)
    return row


def add_exclusion(session: Session, org_id: int, bot_id: int, user: str, now: datetime) -> Campaign:
    row = _campaign(session, org_id, bot_id)
    return set_exclusions(session, org_id, bot_id, [*(row.exclusions or ()), user], now)


def remove_exclusion(
    session: Session, org_id: int, bot_id: int, user: str, now: datetime
) -> Campaign:
    row = _campaign(session, org_id, bot_id)
    kept = [u for u in row.exclusions or () if u != user]
    return set_exclusions(session, org_id, bot_id, kept, now)


def draft_of(row: Campaign) -> dict[str, Any]:
    """The draft as operators edit it, with the campaign's (operational) exclusions."""
    exclusions = list(row.exclusions or ())
    return {**row.draft, "exclusions": exclusions} if exclusions else dict(row.draft)


def get_campaign(session: Session, org_id: int, bot_id: int) -> Campaign:
    return _campaign(session, org_id, bot_id)


def campaign_state(session: Session, org_id: int, bot_id: int) -> dict[str, Any] | None:
    """What the audit log keeps of a campaign before and after a change (None: none yet)."""
    get_bot(session, org_id, bot_id)
    row = session.scalar(scoped(Campaign, org_id, Campaign.bot_id == bot_id))
    if row is None:
        return None
    return copy.deepcopy(
        {
            "enabled": row.enabled,
            "version": row.version,
            "draft": row.draft,
            "exclusions": list(row.exclusions),
        }
    )


def publish(session: Session, org_id: int, bot_id: int, now: datetime) -> int:
    """Freeze the draft as the next version; running episodes finish on theirs."""
    row = _campaign(session, org_id, bot_id)
    row.version += 1
    session.add(
        CampaignVersion(
            org_id=org_id,
            campaign_id=row.id,
            version=row.version,
            definition=dict(row.draft),
            published_at=now,
        )
    )
    row.updated_at = now
    _refresh(session, org_id)
    log.info("recovery.campaign.published", campaign_id=row.id, version=row.version)
    return row.version


def set_enabled(
    session: Session, org_id: int, bot_id: int, enabled: bool, now: datetime
) -> Campaign:
    """Switch the campaign; switching it off stops every running episode."""
    row = _campaign(session, org_id, bot_id)
    if enabled and row.version == 0:
        raise InvalidInput(N_("publish the campaign before enabling it"), "enabled")
    row.enabled, row.updated_at = enabled, now
    if not enabled:
        stopped = (
            session.execute(
                scoped_update(
                    Episode, org_id, Episode.campaign_id == row.id, Episode.status == "running"
                )
                .values(status="stopped", end_reason="campaign_disabled", ended_at=now)
                .returning(Episode.id)
            )
            .scalars()
            .all()
        )
        metrics.episodes_ended("stopped", "campaign_disabled", len(stopped))
        emit_episodes_ended(
            session, [(org_id, i, "stopped", "campaign_disabled") for i in stopped], now
        )
    _refresh(session, org_id)
    return row


def _refresh(session: Session, org_id: int) -> None:
    refresh_wake(session, org_id)
