"""Recovery campaigns: drafts and published versions, episodes, and their steps."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from reengage.adapters.db.models import (
    Campaign,
    CampaignVersion,
    Contact,
    Conversation,
    Delivery,
    Episode,
    MediaAsset,
)
from reengage.domain import recovery as rec
from reengage.domain.timer import Purpose, Timer, timer_key
from reengage.ports import ActivityStore
from reengage.services.chat_action import chat_action_timer
from reengage.services.deliver import DeliveryRequest, delivery_timer, enqueue
from reengage.services.errors import InvalidInput, NotFound
from reengage.services.event_log import append_event
from reengage.services.policies import refresh_wake
from reengage.services.tenancy import get_bot

log = structlog.get_logger(__name__)

# Where a campaign's sends run in distributed mode, apart from conversation timeouts.
QUEUE = "recovery"
# A block's chat action starts this long after the block before it was due.
ACTION_AFTER_PREVIOUS = timedelta(seconds=1)
# How long after a user's message its text is still taken as the reason an episode ended.
OPTOUT_GRACE = timedelta(minutes=10)


def _campaign(
    session: Session, org_id: int, bot_id: int, create: bool = False, now: datetime | None = None
) -> Campaign:
    get_bot(session, org_id, bot_id)
    row = session.scalar(select(Campaign).where(Campaign.bot_id == bot_id))
    if row is None:
        if not create or now is None:
            raise NotFound(f"bot {bot_id} has no campaign", "bot_id")
        row = Campaign(
            org_id=org_id, bot_id=bot_id, enabled=False, draft={}, version=0, updated_at=now
        )
        session.add(row)
    return row


def put_draft(
    session: Session, org_id: int, bot_id: int, data: dict[str, Any], now: datetime
) -> Campaign:
    """Validate and store the draft (what `publish` will freeze)."""
    try:
        campaign = rec.parse_campaign(data)
    except rec.CampaignError as exc:
        raise InvalidInput(exc.message, exc.field) from exc
    for i, step in enumerate(campaign.steps):
        for j, block in enumerate(step.blocks):
            if (
                block.asset_id is not None
                and session.scalar(
                    select(MediaAsset.id).where(
                        MediaAsset.id == block.asset_id, MediaAsset.org_id == org_id
                    )
                )
                is None
            ):
                raise InvalidInput(
                    f"media asset {block.asset_id} not found", f"steps[{i}].blocks[{j}].asset_id"
                )
    row = _campaign(session, org_id, bot_id, create=True, now=now)
    row.draft, row.updated_at = dict(data), now
    session.flush()
    return row


def get_campaign(session: Session, org_id: int, bot_id: int) -> Campaign:
    return _campaign(session, org_id, bot_id)


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
        raise InvalidInput("publish the campaign before enabling it", "enabled")
    row.enabled, row.updated_at = enabled, now
    if not enabled:
        session.execute(
            update(Episode)
            .where(Episode.campaign_id == row.id, Episode.status == "running")
            .values(status="stopped", end_reason="campaign_disabled", ended_at=now)
        )
    _refresh(session, org_id)
    return row


def _refresh(session: Session, org_id: int) -> None:
    refresh_wake(session, org_id)


@lru_cache(maxsize=512)
def _parsed(campaign_id: int, version: int, frozen: str) -> rec.Campaign:
    return rec.parse_campaign(json.loads(frozen))


def version_of(session: Session, campaign_id: int, version: int) -> rec.Campaign:
    definition = session.scalars(
        select(CampaignVersion.definition).where(
            CampaignVersion.campaign_id == campaign_id, CampaignVersion.version == version
        )
    ).one()
    return _parsed(campaign_id, version, json.dumps(definition, sort_keys=True))


def live_campaign(session: Session, bot_id: int) -> tuple[Campaign, rec.Campaign] | None:
    """The bot's enabled campaign with its current version (one query)."""
    found = session.execute(
        select(Campaign, CampaignVersion.definition)
        .join(
            CampaignVersion,
            (CampaignVersion.campaign_id == Campaign.id)
            & (CampaignVersion.version == Campaign.version),
        )
        .where(Campaign.bot_id == bot_id, Campaign.enabled.is_(True))
    ).first()
    if found is None:
        return None
    row, definition = found
    return row, _parsed(row.id, row.version, json.dumps(definition, sort_keys=True))


def step_timer(episode_id: int, due: datetime) -> Timer:
    return Timer(
        timer_key(Purpose.RECOVERY_STEP, str(episode_id)),
        Purpose.RECOVERY_STEP,
        due,
        0,
        {"episode_id": episode_id},
    )


def on_silence(session: Session, conv: Conversation, now: datetime) -> datetime | None:
    """The subject timer fired: start an episode if the campaign says so."""
    live = live_campaign(session, conv.bot_id)
    if live is None or conv.last_activity_at is None:
        return None
    row, campaign = live
    contact = session.get_one(Contact, conv.contact_id)
    # The contact's latest episode: already started for this silence? When did it start?
    latest = session.execute(
        select(Episode.seq, Episode.started_at)
        .where(Episode.contact_id == contact.id)
        .order_by(Episode.id.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.seq == conv.activity_seq:
        return None
    last_start = latest.started_at if latest is not None else None
    decision = rec.decide_start(
        campaign,
        contact_id=contact.id,
        user_id=contact.external_id,
        seq=conv.activity_seq,
        silent_since=conv.last_activity_at,
        now=now,
        paid=contact.paid_at is not None,
        blocked=contact.blocked_at is not None,
        last_episode_start=last_start,
        opted_out=contact.opted_out_at is not None,
    )
    if isinstance(decision, rec.NoEpisode):
        if decision.reason == "not_due":
            return conv.last_activity_at + campaign.threshold
        log.info("recovery.episode.skipped", contact_id=contact.id, reason=decision.reason)
        return None
    due = rec.step_due(campaign, 0, decision.started_at, contact.time_zone)
    episode = Episode(
        org_id=conv.org_id,
        campaign_id=row.id,
        version=row.version,
        bot_id=conv.bot_id,
        contact_id=contact.id,
        conversation_id=conv.id,
        seq=conv.activity_seq,
        holdout=decision.holdout,
        status="running",
        next_step=0,
        next_due_at=due,
        started_at=decision.started_at,
    )
    session.add(episode)
    session.flush()
    timer = step_timer(episode.id, due)
    session.info.setdefault("after_commit", []).append(lambda: [timer])
    append_event(
        session,
        conv,
        kind="recovery_episode_started",
        now=now,
        dedup_key=f"recovery:{episode.id}",
        detail={"episode": episode.id},
    )
    log.info("recovery.episode.started", episode_id=episode.id, holdout=decision.holdout)
    return None


def _end(episode: Episode, status: str, reason: str, now: datetime) -> list[Timer]:
    episode.status, episode.end_reason, episode.ended_at = status, reason, now
    episode.next_due_at = None
    log.info("recovery.step.skipped", episode_id=episode.id, reason=reason, status=status)
    return []


def handle_step(
    session: Session, timer: Timer, now: datetime, *, activity: ActivityStore
) -> list[Timer]:
    """Send the episode's next step, unless the user came back, paid, or was stopped."""
    episode = session.get(Episode, int(timer.payload["episode_id"] or 0), with_for_update=True)
    if episode is None:
        return []
    if episode.status != "running":
        # Ended meanwhile (the user came back, paid, opted out, the campaign was disabled):
        # the step that was due is reported skipped for that reason.
        log.info(
            "recovery.step.skipped",
            episode_id=episode.id,
            step=episode.next_step,
            reason=episode.end_reason,
            status=episode.status,
        )
        return []
    contact = session.get_one(Contact, episode.contact_id)
    campaign_row = session.get_one(Campaign, episode.campaign_id)
    campaign = version_of(session, campaign_row.id, episode.version)
    seq = activity.hot_seq(contact.bot_id, contact.external_id)
    if seq is None:
        conv = session.get(Conversation, episode.conversation_id)
        seq = conv.activity_seq if conv else episode.seq
    if contact.paid_at is not None and contact.paid_at >= episode.started_at:
        return _end(episode, "converted", "paid", now)
    if seq != episode.seq:
        return _end(episode, "cancelled", "user_active", now)
    if contact.blocked_at is not None:
        return _end(episode, "stopped", "blocked", now)
    if not campaign_row.enabled:
        return _end(episode, "stopped", "campaign_disabled", now)
    if contact.external_id in campaign.exclusions:
        return _end(episode, "stopped", "excluded", now)
    index = episode.next_step
    step = campaign.steps[index]
    timers = _send_step(session, episode, index, step, now)
    session.info.setdefault("after_commit", []).append(lambda: timers)
    episode.last_sent_at, episode.next_step = now, index + 1
    log.info("recovery.step.sent", episode_id=episode.id, step=index, holdout=episode.holdout)
    following = [
        i for i in range(index + 1, len(campaign.steps)) if campaign.steps[i].active_blocks
    ]
    if not following:
        return _end(episode, "completed", "completed", now)
    episode.next_step = following[0]
    due = rec.step_due(campaign, following[0], now, contact.time_zone)
    episode.next_due_at = due
    log.info(
        "recovery.step.scheduled", episode_id=episode.id, step=following[0], due_at=due.isoformat()
    )
    return [step_timer(episode.id, due)]


def _send_step(
    session: Session, episode: Episode, index: int, step: rec.Step, now: datetime
) -> list[Timer]:
    timers: list[Timer] = []
    at, previous = now, None
    for j, block in enumerate(step.blocks):
        if not block.active:
            continue
        start, at = at, at + block.delay
        request = DeliveryRequest(
            episode.org_id,
            episode.bot_id,
            episode.contact_id,
            f"recovery:{episode.id}:{index}:{j}",
            "recovery",
            block.message(),
            episode.conversation_id,
            episode.seq,
            block.auto_delete_after,
        )
        delivery_id = enqueue(session, request, now)
        if episode.holdout:
            row = session.get_one(Delivery, delivery_id)
            if row.status == "scheduled":
                row.status, row.reason, row.finished_at = "skipped", "holdout", now
            continue
        timers.append(delivery_timer(delivery_id, at, queue=QUEUE))
        if block.delay:
            # After the block before it went out (its message would clear the action).
            begin = start + ACTION_AFTER_PREVIOUS if previous else start
            timers.append(chat_action_timer(delivery_id, begin, at, previous))
        previous = delivery_id
    return timers


def pending_step_timers(
    session: Session, due_before: datetime | None, after_id: int, limit: int
) -> list[tuple[int, Timer]]:
    stmt = (
        select(Episode.id, Episode.next_due_at)
        .where(Episode.status == "running", Episode.next_due_at.is_not(None), Episode.id > after_id)
        .order_by(Episode.id)
        .limit(limit)
    )
    if due_before is not None:
        stmt = stmt.where(Episode.next_due_at <= due_before)
    return [(i, step_timer(i, due)) for i, due in session.execute(stmt)]


def campaign_threshold(session: Session, bot_id: int) -> timedelta | None:
    live = live_campaign(session, bot_id)
    return live[1].threshold if live else None


def on_user_text(session: Session, bot_id: int, user_id: str, text: str, now: datetime) -> bool:
    """An opt-out keyword stops the user's episodes and keeps them out of future ones."""
    live = live_campaign(session, bot_id)
    if live is None or not rec.is_optout(live[1], text):
        return False
    contact = session.scalar(
        select(Contact).where(Contact.bot_id == bot_id, Contact.external_id == user_id)
    )
    if contact is None:
        return False
    contact.opted_out_at = contact.opted_out_at or now
    # The opt-out message is activity too, and may already have ended the episode as a return.
    ended_by_it = and_(
        Episode.status == "cancelled",
        Episode.end_reason == "user_active",
        Episode.ended_at >= now - OPTOUT_GRACE,
    )
    session.execute(
        update(Episode)
        .where(Episode.contact_id == contact.id, or_(Episode.status == "running", ended_by_it))
        .values(status="stopped", end_reason="opted_out", ended_at=now, next_due_at=None)
    )
    log.info("recovery.opted_out", contact_id=contact.id)
    return True


def step_stats(session: Session, org_id: int, bot_id: int) -> list[dict[str, int]]:
    """Per step: episodes it was sent in, users who came back within 24 h of it, and payments
    after it (holdout episodes are counted apart, for lift)."""
    row = _campaign(session, org_id, bot_id)
    stats: dict[tuple[int, bool], dict[str, int]] = {}
    episodes = session.scalars(select(Episode).where(Episode.campaign_id == row.id))
    for episode in episodes:
        sent_steps = {
            int(key.split(":")[2])
            for key in session.scalars(
                select(Delivery.dedup_key).where(
                    Delivery.dedup_key.like(f"recovery:{episode.id}:%"),
                    Delivery.status.in_(["sent", "skipped"]),
                )
            )
        }
        for step in sent_steps:
            entry = stats.setdefault(
                (step, episode.holdout), {"sent": 0, "returned": 0, "converted": 0}
            )
            entry["sent"] += 1
        if not sent_steps or episode.ended_at is None or episode.last_sent_at is None:
            continue
        last = stats[(max(sent_steps), episode.holdout)]
        within = episode.ended_at - episode.last_sent_at <= timedelta(hours=24)
        if episode.end_reason == "user_active" and within:
            last["returned"] += 1
        if episode.status == "converted":
            last["converted"] += 1
    return [
        {"step": step, "holdout": int(holdout), **values}
        for (step, holdout), values in sorted(stats.items())
    ]
