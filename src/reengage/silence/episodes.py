"""Recovery episodes: started by a silence, one step at a time, ended by one rule.

An episode starts when a contact's silence passes the campaign's threshold (counted from the
later of their last activity and the conversation's close), runs the campaign's steps that
send something, each due at its schedule from the previous one's due time, and ends as
`cancelled` (they came back), `converted` (they paid), `stopped` (blocked, opted out,
excluded, campaign off) or `completed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from reengage import metrics
from reengage.adapters.db.models import Bot, Campaign, Contact, Conversation, Delivery, Episode
from reengage.adapters.db.sets import among, write_changes
from reengage.delivery.chat_action import chat_action_timer
from reengage.delivery.outbox import DeliveryRequest, delivery_timer, enqueue_many
from reengage.delivery.outcome import latest_seqs
from reengage.domain import event as ev
from reengage.domain import recovery as rec
from reengage.domain import schedule as sch
from reengage.domain.timer import Purpose, Timer, timer_key
from reengage.domain.usual_hour import HourProfile
from reengage.events.outbox import emit_episodes_ended, emit_for_episode
from reengage.ports import ActivityStore
from reengage.services.config_cache import ConfigCache
from reengage.services.contacts import stop_completed
from reengage.silence.live_campaign import version_of
from reengage.timers.handler import FollowUps, Outcome

if TYPE_CHECKING:
    from reengage.silence.handler import SilencesSeen

log = structlog.get_logger(__name__)

# Where a campaign's sends run in distributed mode, apart from conversation timeouts.
QUEUE = "recovery"
# A block's chat action starts this long after the block before it was due.
ACTION_AFTER_PREVIOUS = timedelta(seconds=1)


def step_timer(episode_id: int, due: datetime) -> Timer:
    return Timer(
        timer_key(Purpose.RECOVERY_STEP, str(episode_id)),
        Purpose.RECOVERY_STEP,
        due,
        0,
        {"episode_id": episode_id},
    )


def start_episode(
    session: Session,
    conv: Conversation,
    silent_since: datetime,
    now: datetime,
    follow: FollowUps,
    seen: SilencesSeen,
) -> datetime | None:
    """The subject timer fired and nothing else speaks to this contact: start an episode if
    the campaign says so; return when to look again if its threshold has not passed."""
    row = seen.live_campaign(session, conv.org_id, conv.bot_id)
    if row is None:
        return None
    campaign = row.campaign
    contact = session.get_one(Contact, conv.contact_id)
    # The contact's latest episode: already started for this silence? When did it start?
    latest = seen.latest.get(contact.id)
    if latest is not None and latest[0] == conv.activity_seq:
        return None
    decision = rec.decide_start(
        campaign,
        contact_id=contact.id,
        user_id=contact.external_id,
        seq=conv.activity_seq,
        silent_since=silent_since,
        now=now,
        paid=contact.paid_at is not None,
        blocked=contact.blocked_at is not None,
        last_episode_start=latest[1] if latest is not None else None,
        opted_out=contact.opted_out_at is not None,
        excluded=contact.external_id in row.exclusions,
    )
    if isinstance(decision, rec.NoEpisode):
        if decision.reason == "not_due":
            return silent_since + campaign.threshold
        log.debug("recovery.episode.skipped", contact_id=contact.id, reason=decision.reason)
        return None
    first = campaign.next_step()
    assert first is not None  # decide_start refuses a campaign that sends nothing
    due = rec.step_due(
        campaign, first, decision.started_at, contact.time_zone, _profile(campaign, contact)
    )
    episode = {
        "org_id": conv.org_id,
        "campaign_id": row.id,
        "version": row.version,
        "bot_id": conv.bot_id,
        "contact_id": contact.id,
        "conversation_id": conv.id,
        "seq": conv.activity_seq,
        "holdout": decision.holdout,
        "status": "running",
        "next_step": first,
        "next_due_at": due,
        "started_at": decision.started_at,
    }
    seen.latest[contact.id] = (conv.activity_seq, decision.started_at)
    seen.started.append(Started(episode, conv, follow))  # inserted by `SilencesSeen.write`
    return None


@dataclass(frozen=True, slots=True)
class Started:
    """An episode a silence started (its row, to insert with the batch's others): its first
    step's timer and its event follow its insert."""

    row: dict[str, Any]
    conv: Conversation
    follow: FollowUps


def end_episode(session: Session, episode: Episode, end: rec.EndEpisode, now: datetime) -> None:
    episode.status, episode.end_reason = end.status, end.reason
    episode.ended_at, episode.next_due_at = end.at or now, None
    emit_for_episode(
        session,
        episode,
        ev.EventType.EPISODE_ENDED,
        dedup_key="ended",
        now=now,
        status=end.status,
        reason=end.reason,
    )
    log.debug("recovery.step.skipped", episode_id=episode.id, reason=end.reason, status=end.status)


@dataclass(frozen=True, slots=True)
class StepHandler:
    """The `recovery_step` timer of an episode: send its next step, unless the user came back,
    paid, or was stopped (`recovery.decide_end`)."""

    sessions: sessionmaker[Session]
    activity: ActivityStore
    config: ConfigCache = field(default_factory=lambda: ConfigCache(None))
    purpose: str = Purpose.RECOVERY_STEP
    queue: str = QUEUE

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        return self.handle_batch([timer], now)[0]

    def handle_batch(self, timers: Sequence[Timer], now: datetime) -> list[Outcome]:
        """Episodes locked together (in id order), their contacts, campaigns and the users'
        latest activity read in a few statements; each step decided alone."""
        ids = [int(t.payload["episode_id"] or 0) for t in timers]
        follows = []
        with self.sessions.begin() as session:
            episodes = {
                e.id: e
                for e in session.scalars(
                    select(Episode)
                    .where(among(session, Episode.id, ids))
                    .order_by(Episode.id)
                    .with_for_update()
                )
            }
            seen = StepsSeen.load(session, self.activity, list(episodes.values()), self.config)
            stopped = _halted_bots(session, list(episodes.values()))
            sends = StepSends()
            ended: list[tuple[str, str | None]] = []
            for episode_id in ids:
                follows.append(follow := FollowUps())
                episode = episodes.get(episode_id)
                running = episode is not None and episode.status == "running"
                if running and episode is not None and episode.bot_id in stopped:
                    # Left due: enabling the bot puts its timer back (see bot_lifecycle).
                    log.debug("recovery.step.held", episode_id=episode.id, reason="bot_disabled")
                elif episode is not None and episode.status == "running":
                    self._step(session, episode, now, follow, seen, sends)
                    if episode.status != "running":
                        ended.append((episode.status, episode.end_reason))
                elif episode is not None:
                    self._skipped(episode)
            sends.write(session, now)
            write_changes(session, episodes.values())  # one UPDATE, not one per episode
        for outcome, reason in ended:  # once committed
            metrics.episodes_ended(outcome, reason)
        return [follow.outcome() for follow in follows]

    @staticmethod
    def _skipped(episode: Episode) -> None:
        # Ended meanwhile (the user came back, paid, opted out, the campaign was disabled):
        # the step that was due is reported skipped for that reason.
        log.debug(
            "recovery.step.skipped",
            episode_id=episode.id,
            step=episode.next_step,
            reason=episode.end_reason,
            status=episode.status,
        )

    def _step(
        self,
        session: Session,
        episode: Episode,
        now: datetime,
        follow: FollowUps,
        seen: StepsSeen,
        sends: StepSends,
    ) -> None:
        contact = session.get_one(Contact, episode.contact_id)
        campaign_row = session.get_one(Campaign, episode.campaign_id)
        state = rec.ContactNow(
            seen.seqs.get(contact.id),
            paid_at=contact.paid_at,
            blocked=contact.blocked_at is not None,
            opted_out=contact.opted_out_at is not None,
            excluded=contact.external_id in (campaign_row.exclusions or ()),
            campaign_enabled=campaign_row.enabled,
        )
        ended = rec.decide_end(episode.seq, episode.started_at, state)
        if ended is not None:
            end_episode(
                session,
                episode,
                replace(ended, at=ended.at if ended.status == "converted" else now),
                now,
            )
            return
        campaign = seen.version(session, campaign_row.id, episode.version)
        index = episode.next_step
        # Chained from the step's due time, as the preview computes it: a late run (a busy
        # worker, a held send) does not push the rest of the campaign.
        anchor = episode.next_due_at or now
        sends.plan(episode, contact, index, campaign, now, follow)
        # The step the contact last received: a return or a payment within its windows is
        # credited to it (`results.decide_credit`), after the last step too.
        episode.last_sent_at, episode.last_step = now, index
        episode.return_until = now + campaign.return_window
        episode.convert_until = now + campaign.conversion_window
        log.debug("recovery.step.sent", episode_id=episode.id, step=index, holdout=episode.holdout)
        emit_for_episode(
            session,
            episode,
            ev.EventType.EPISODE_STEP_SENT,
            dedup_key=f"step:{index}",
            now=now,
            step=index,
        )
        following = campaign.next_step(index)
        if following is None:
            episode.next_step = index + 1
            end_episode(session, episode, rec.EndEpisode("completed", "completed"), now)
            return
        episode.next_step = following
        due = rec.step_due(
            campaign, following, anchor, contact.time_zone, _profile(campaign, contact)
        )
        episode.next_due_at = due
        log.debug("recovery.step.scheduled", episode_id=episode.id, step=following, due_at=due)
        follow.timers.append(step_timer(episode.id, due))

    def pending(
        self, session: Session, due_before: datetime | None, after_id: int, limit: int
    ) -> list[tuple[int, Timer]]:
        return pending_step_timers(session, due_before, after_id, limit)


@dataclass(slots=True)
class StepsSeen:
    """What a batch of steps reads once: their contacts and campaigns (held here, so that the
    session's identity map answers `session.get` for them), each user's latest activity
    version, the campaign versions."""

    seqs: dict[int, int | None]
    held: list[object]
    config: ConfigCache

    @classmethod
    def load(
        cls, session: Session, activity: ActivityStore, episodes: list[Episode], config: ConfigCache
    ) -> StepsSeen:
        running = [e for e in episodes if e.status == "running"]
        contacts = session.scalars(  # unscoped: the contacts of episodes a timer names
            select(Contact).where(among(session, Contact.id, {e.contact_id for e in running}))
        ).all()
        campaigns = session.scalars(  # unscoped: the campaigns of episodes a timer names
            select(Campaign).where(among(session, Campaign.id, {e.campaign_id for e in running}))
        ).all()
        return cls(latest_seqs(session, activity, contacts), [*contacts, *campaigns], config)

    def version(self, session: Session, campaign_id: int, version: int) -> rec.Campaign:
        return self.config.version(
            campaign_id, version, lambda: version_of(session, campaign_id, version)
        )


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a step to enqueue: its request (without the block before it, known once
    that one is written), when it is due and when the one before it was."""

    request: DeliveryRequest
    start: datetime
    at: datetime
    delayed: bool


@dataclass(slots=True)
class Planned:
    episode: Episode
    follow: FollowUps
    blocks: list[Block]


@dataclass(slots=True)
class StepSends:
    """The blocks a batch of steps sends, written together: each step's first blocks in one
    statement, then its second blocks (each after its first), and so on."""

    planned: list[Planned] = field(default_factory=list)

    def plan(
        self,
        episode: Episode,
        contact: Contact,
        index: int,
        campaign: rec.Campaign,
        now: datetime,
        follow: FollowUps,
    ) -> None:
        blocks: list[Block] = []
        at = now
        for j, block in enumerate(campaign.steps[index].blocks):
            if not block.active:
                continue
            start, at = at, at + block.delay
            request = DeliveryRequest(
                episode.org_id,
                episode.bot_id,
                episode.contact_id,
                f"recovery:{episode.id}:{index}:{j}",
                "recovery",
                block.message(contact.name),
                episode.conversation_id,
                episode.seq,
                block.auto_delete_after,
                proactive_group=f"recovery:{episode.id}:{index}",
                episode_id=episode.id,
                valid_until=rec.valid_until(campaign, at, contact.time_zone),
                retry_ambiguous=campaign.retry_ambiguous,
                step=index,
                step_lead=not blocks and not episode.test_send,  # what the funnel counts
                episode_started_at=episode.started_at,
                episode_version=episode.version,
                episode_holdout=episode.holdout,
            )
            blocks.append(Block(request, start, at, bool(block.delay)))
        self.planned.append(Planned(episode, follow, blocks))

    def write(self, session: Session, now: datetime) -> None:
        previous: dict[int, int] = {}  # planned step -> its last block's delivery
        held_out: list[int] = []
        rounds = max((len(p.blocks) for p in self.planned), default=0)
        for j in range(rounds):
            steps = [k for k, p in enumerate(self.planned) if j < len(p.blocks)]
            requests = [
                replace(self.planned[k].blocks[j].request, after_id=previous.get(k)) for k in steps
            ]
            for k, delivery_id in zip(steps, enqueue_many(session, requests, now), strict=True):
                planned, block = self.planned[k], self.planned[k].blocks[j]
                if planned.episode.holdout:
                    held_out.append(delivery_id)  # counted, never sent
                    continue
                timers = planned.follow.timers
                bot = planned.episode.bot_id
                timers.append(delivery_timer(delivery_id, block.at, queue=QUEUE, bot_id=bot))
                if block.delayed:
                    # After the block before it went out (its message would clear the action).
                    before = previous.get(k)
                    begin = block.start + ACTION_AFTER_PREVIOUS if before else block.start
                    timers.append(chat_action_timer(delivery_id, begin, block.at, before))
                previous[k] = delivery_id
        if held_out:
            session.execute(  # unscoped: rows this batch just wrote
                update(Delivery)
                .where(among(session, Delivery.id, held_out), Delivery.status == "scheduled")
                .values(status="skipped", reason="holdout", finished_at=now)
            )
        self.planned.clear()


def _halted_bots(session: Session, episodes: list[Episode]) -> set[int]:
    """The bots among these episodes' that are disabled or deleted."""
    if not episodes:
        return set()
    return set(
        session.scalars(  # unscoped: the bots of episodes a timer names
            select(Bot.id).where(
                Bot.id.in_({e.bot_id for e in episodes}), Bot.disabled_at.is_not(None)
            )
        )
    )


def pending_step_timers(
    session: Session, due_before: datetime | None, after_id: int, limit: int
) -> list[tuple[int, Timer]]:
    """Running episodes' step timers; a disabled bot's are left out (its due timers are
    put back when it is enabled)."""
    stmt = (
        select(Episode.id, Episode.next_due_at)
        .join(Bot, Bot.id == Episode.bot_id)
        .where(
            Episode.status == "running",
            Episode.next_due_at.is_not(None),
            Episode.id > after_id,
            Bot.disabled_at.is_(None),
        )
        .order_by(Episode.id)
        .limit(limit)
    )
    if due_before is not None:
        stmt = stmt.where(Episode.next_due_at <= due_before)
    return [(i, step_timer(i, due)) for i, due in session.execute(stmt)]


def stop_for_optout(session: Session, contact: Contact, said_at: datetime, now: datetime) -> None:
    """The contact opted out: their running episodes stop, and so does the one their opt-out
    message itself ended as a return (it is activity too) — `stopped/opted_out` says why. A
    return credited to that message is no return."""
    stopped = (
        session.execute(
            update(Episode)
            .where(
                Episode.contact_id == contact.id,
                (Episode.status == "running")
                | (
                    (Episode.status == "cancelled")
                    & (Episode.end_reason == "user_active")
                    & (Episode.ended_at >= said_at)
                ),
            )
            .values(
                status="stopped",
                end_reason="opted_out",
                ended_at=now,
                next_due_at=None,
                returned_at=None,
            )
            .returning(Episode.id)
        )
        .scalars()
        .all()
    )
    # An episode the opt-out message itself had ended as a return is counted again here.
    metrics.episodes_ended("stopped", "opted_out", len(stopped))
    ended = [(contact.org_id, i, "stopped", "opted_out") for i in stopped]
    emit_episodes_ended(session, ended, now)
    stop_completed(session, contact, "opted_out", said_at)
    log.info("recovery.opted_out", contact_id=contact.id)


def _profile(campaign: rec.Campaign, contact: Contact) -> HourProfile | None:
    """The contact's hour-of-week profile, read only when a step is at their usual hour."""
    if not any(isinstance(s.schedule, sch.DaysUsual) for s in campaign.steps):
        return None
    return HourProfile.decode(contact.hour_profile)
