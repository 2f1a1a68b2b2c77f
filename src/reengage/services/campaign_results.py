"""A campaign's results: two aggregate statements (episodes, and the first block of each step)
over indexed columns, turned into the funnel and the lift by `domain/results.py`; and the
episodes and deliveries behind them, page by page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, text
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Campaign, CampaignVersion, Delivery, Episode
from reengage.adapters.db.sets import on_postgres
from reengage.domain import recovery as rec
from reengage.domain import results as res
from reengage.domain.activity import ChannelKind
from reengage.i18n import N_
from reengage.services.errors import InvalidInput, NotFound
from reengage.services.tenancy import get_bot, scoped, scoped_columns

PAGE = 500


@dataclass(frozen=True, slots=True)
class Filters:
    """Episodes started in [`start`, `end`) of one version (None: any)."""

    start: datetime | None = None
    end: datetime | None = None
    version: int | None = None

    def check(self) -> Filters:
        if not res.valid_range(self.start, self.end):
            raise InvalidInput(N_("must be after `from`"), "to")
        if self.version is not None and self.version < 1:
            raise InvalidInput(N_("versions start at 1"), "version")
        return self


@dataclass(frozen=True, slots=True)
class Windows:
    return_window: timedelta
    conversion_window: timedelta


@dataclass(frozen=True, slots=True)
class Results:
    bot_id: int
    receipts: bool  # the channel reports delivered and read
    versions: list[res.VersionResults]
    windows: dict[int, Windows]


def campaign_of(session: Session, org_id: int, bot_id: int) -> Campaign:
    get_bot(session, org_id, bot_id)
    row = session.scalar(scoped(Campaign, org_id, Campaign.bot_id == bot_id))
    if row is None:
        raise NotFound(N_("bot {bot_id} has no campaign"), "bot_id", bot_id=bot_id)
    return row


def _episodes_of(campaign: Campaign, filters: Filters, *columns: Any) -> Select[Any]:
    """`columns` of the campaign's episodes in the range (the episode table first in FROM)."""
    stmt = (
        scoped_columns(Episode, campaign.org_id, *columns)
        .select_from(Episode)
        .where(Episode.campaign_id == campaign.id)
    )
    if filters.start is not None:
        stmt = stmt.where(Episode.started_at >= filters.start)
    if filters.end is not None:
        stmt = stmt.where(Episode.started_at < filters.end)
    if filters.version is not None:
        stmt = stmt.where(Episode.version == filters.version)
    return stmt


def campaign_results(session: Session, org_id: int, bot_id: int, filters: Filters) -> Results:
    """The funnel per version and step and the lift, for episodes started in the range."""
    filters.check()
    campaign = campaign_of(session, org_id, bot_id)
    receipts = get_bot(session, org_id, bot_id).channel == ChannelKind.WHATSAPP.value
    if on_postgres(session):
        # Two short aggregates: compiling them (JIT) costs more than it saves.
        session.execute(text("SET LOCAL jit = off"))
    episodes = [
        res.EpisodeGroup(*row) for row in session.execute(_episode_groups(campaign, filters))
    ]
    steps = [res.DeliveryGroup(*row) for row in session.execute(_step_groups(campaign, filters))]
    versions = res.funnel(episodes, steps, receipts)
    return Results(bot_id, receipts, versions, _windows(session, campaign))


def _episode_groups(campaign: Campaign, filters: Filters) -> Select[Any]:
    def reason(name: str) -> Any:
        return func.count().filter(Episode.status == "stopped", Episode.end_reason == name)

    keys = (Episode.version, Episode.holdout, Episode.last_step)
    return (
        _episodes_of(
            campaign,
            filters,
            *keys,
            func.count(),
            func.count(Episode.returned_at),
            func.count(Episode.converted_at),
            reason("opted_out"),
            reason("blocked"),
        )
        .where(Episode.test_send.is_(False))  # an operator's own test sends
        .group_by(*keys)
    )


def _step_groups(campaign: Campaign, filters: Filters) -> Select[Any]:
    """The first block of each step, by the episode's version and arm: from the deliveries
    alone (they carry their episode's start, version and arm), one index range. A test
    send's deliveries are no step's lead: they are not counted."""
    keys = (
        Delivery.episode_version,
        Delivery.episode_holdout,
        Delivery.step,
        Delivery.status,
        Delivery.reason,
        Delivery.platform_status,
    )
    stmt = scoped_columns(Delivery, campaign.org_id, *keys, func.count()).where(
        Delivery.bot_id == campaign.bot_id, Delivery.step_lead
    )
    if filters.start is not None:
        stmt = stmt.where(Delivery.episode_started_at >= filters.start)
    if filters.end is not None:
        stmt = stmt.where(Delivery.episode_started_at < filters.end)
    if filters.version is not None:
        stmt = stmt.where(Delivery.episode_version == filters.version)
    return stmt.group_by(*keys)


def _windows(session: Session, campaign: Campaign) -> dict[int, Windows]:
    out = {}
    for version, definition in session.execute(
        scoped_columns(
            CampaignVersion, campaign.org_id, CampaignVersion.version, CampaignVersion.definition
        ).where(CampaignVersion.campaign_id == campaign.id)
    ):
        try:
            parsed = rec.parse_campaign(definition)
        except rec.CampaignError:  # pragma: no cover - published drafts were validated
            parsed = rec.Campaign()
        out[version] = Windows(parsed.return_window, parsed.conversion_window)
    return out


# --- listings -------------------------------------------------------------------------------


def episode_page(
    session: Session, org_id: int, bot_id: int, filters: Filters, after_id: int, limit: int
) -> list[Episode]:
    """The campaign's episodes in the range, by id, after `after_id` (keyset paging)."""
    filters.check()
    campaign = campaign_of(session, org_id, bot_id)
    stmt = _episodes_of(campaign, filters, Episode).where(Episode.id > after_id)
    return list(session.scalars(stmt.order_by(Episode.id).limit(limit)))


def delivery_page(
    session: Session, org_id: int, bot_id: int, filters: Filters, after_id: int, limit: int
) -> list[Delivery]:
    """The deliveries of the campaign's episodes in the range, by id, after `after_id`."""
    filters.check()
    campaign = campaign_of(session, org_id, bot_id)
    stmt = (
        _episodes_of(campaign, filters, Delivery)
        .join(Delivery, Delivery.episode_id == Episode.id)
        .where(
            Delivery.bot_id == campaign.bot_id, Delivery.org_id == org_id, Delivery.id > after_id
        )
    )
    return list(session.scalars(stmt.order_by(Delivery.id).limit(limit)))


def all_pages(page: Any, session: Session, *args: Any) -> Iterator[Any]:
    """Every row of a listing, a keyset page at a time (memory stays one page)."""
    after = 0
    while True:
        rows = page(session, *args, after, PAGE)
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1].id
