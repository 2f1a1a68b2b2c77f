"""The live campaign of a bot and its published versions, as the engine reads them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Campaign, CampaignVersion
from reengage.domain import recovery as rec


@lru_cache(maxsize=512)
def _parsed(campaign_id: int, version: int, frozen: str) -> rec.Campaign:
    return rec.parse_campaign(json.loads(frozen))


def version_of(session: Session, campaign_id: int, version: int) -> rec.Campaign:
    """A published version, parsed once per process (versions never change)."""
    definition = session.scalars(
        select(CampaignVersion.definition).where(  # unscoped: the campaign of a running episode
            CampaignVersion.campaign_id == campaign_id, CampaignVersion.version == version
        )
    ).one()
    return _parsed(campaign_id, version, json.dumps(definition, sort_keys=True))


@dataclass(frozen=True, slots=True)
class LiveCampaign:
    """A bot's enabled campaign as a silence reads it: the row's id, current version and
    exclusions, and that version parsed (a value: held across transactions)."""

    id: int
    version: int
    exclusions: frozenset[str]
    campaign: rec.Campaign


def live_campaign(session: Session, bot_id: int) -> LiveCampaign | None:
    """The bot's enabled campaign with its current version (one query)."""
    found = session.execute(
        select(  # unscoped: the bot a timer names
            Campaign.id, Campaign.version, Campaign.exclusions, CampaignVersion.definition
        )
        .join(
            CampaignVersion,
            (CampaignVersion.campaign_id == Campaign.id)
            & (CampaignVersion.version == Campaign.version),
        )
        .where(Campaign.bot_id == bot_id, Campaign.enabled.is_(True))
    ).first()
    if found is None:
        return None
    campaign_id, version, exclusions, definition = found
    parsed = _parsed(campaign_id, version, json.dumps(definition, sort_keys=True))
    return LiveCampaign(campaign_id, version, frozenset(exclusions or ()), parsed)
