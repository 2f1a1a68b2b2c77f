"""What-if replay: a campaign draft run over contacts' real past activity with a virtual clock.

Each silence in a contact's history (a user message followed by no other for the campaign's
threshold) goes through the engine's own decisions: `recovery.decide_start` says whether it
starts an episode, `recovery.sourced_step_dues` when each step is due (usual-hour steps read
the contact's hour-of-week profile, learned as the virtual clock goes, from their activity
before the episode only), and the engine's end rule (`recovery.decide_end`: the contact came
back) says which steps would not be sent. Nothing is written, nothing is sent.

Figures, per step: sends and messages; `returned_before` (episodes where the contact came back
on their own before the step was due: the engine would cancel it); `wasted` (sends after which
the contact came back on their own within the campaign's return window: the history holds no
campaign, so they needed no nudge); `collisions` (sends within `collision_gap` of a
conversation-timeout stage of the same silence); which instants came from a profile and which
from the fallback. Overall: sends by local hour of the day, and the queue the bot's platform
rate makes of them (every block paced one per 1/rate seconds in due order, as the pacer does:
the longest wait, when, and how many messages were then ahead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from reengage.domain import recovery as rec
from reengage.domain import schedule as sch
from reengage.domain.usual_hour import HourProfile

MAX_DAYS = 90
ACTIVE_WITHIN = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ContactHistory:
    """One contact's user-activity instants (sorted, UTC) and what decides their episodes."""

    contact_id: int
    user_id: str
    activity: Sequence[datetime]
    zone: str | None = None
    paid_at: datetime | None = None
    blocked: bool = False
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """Episodes start in [start, end); `rate` is the bot's platform rate (messages/s);
    `timeout_stages` the silences after which the conversation timeout's stages fire."""

    start: datetime
    end: datetime
    rate: float = 30.0
    timeout_stages: tuple[timedelta, ...] = ()
    collision_gap: timedelta = timedelta(hours=1)


@dataclass(slots=True)
class StepFigures:
    index: int
    sent: int = 0
    messages: int = 0
    returned_before: int = 0
    wasted: int = 0
    collisions: int = 0
    active_within_hour: int = 0
    from_profile: int = 0
    from_fallback: int = 0


@dataclass(frozen=True, slots=True)
class QueueEstimate:
    """The bot's platform rate against the sends: the longest wait, the local hour of the send
    that waited it, and how many messages were then ahead of it."""

    rate: float
    peak_wait_seconds: float
    peak_hour: int | None
    peak_backlog: int


@dataclass(frozen=True, slots=True)
class ReplayResult:
    contacts: int
    contact_days: int
    silences: int
    episodes_started: int
    holdout: int
    not_started: dict[str, int]
    steps: list[StepFigures]
    sends_by_hour: list[int]
    queue: QueueEstimate

    @property
    def sends(self) -> int:
        return sum(s.sent for s in self.steps)

    @property
    def active_within_hour_share(self) -> float:
        """The share of step sends followed by the contact's own activity within an hour."""
        sent = self.sends
        return sum(s.active_within_hour for s in self.steps) / sent if sent else 0.0


def _epoch(at: datetime) -> float:
    return at.timestamp()


@dataclass(slots=True)
class Replay:
    """Accumulates contacts one at a time (a job reports progress between chunks)."""

    campaign: rec.Campaign
    settings: ReplaySettings
    contacts: int = 0
    silences: int = 0
    episodes: int = 0
    holdout: int = 0
    not_started: dict[str, int] = field(default_factory=dict)
    steps: dict[int, StepFigures] = field(default_factory=dict)
    sends: list[tuple[float, int]] = field(default_factory=list)  # (instant, local hour)
    _learns: bool = False

    def __post_init__(self) -> None:
        self.steps = {
            i: StepFigures(i) for i, s in enumerate(self.campaign.steps) if s.active_blocks
        }
        # Profiles are learned only when a step reads them (as the engine reads them).
        self._learns = any(isinstance(s.schedule, sch.DaysUsual) for s in self.campaign.steps)

    def add_all(self, histories: Iterable[ContactHistory]) -> None:
        for history in histories:
            self.add(history)

    def add(self, history: ContactHistory) -> None:
        campaign, settings = self.campaign, self.settings
        self.contacts += 1
        tz = sch.zone(history.zone or campaign.time_zone)
        campaign_tz = sch.zone(campaign.time_zone)
        profile = HourProfile()
        last_start: datetime | None = None
        activity = history.activity
        for i, silent_since in enumerate(activity):
            if self._learns:
                profile = profile.observe(silent_since, tz)
            back = activity[i + 1] if i + 1 < len(activity) else None
            now = silent_since + campaign.threshold
            if now < settings.start or now >= settings.end or (back is not None and back <= now):
                continue  # outside the replayed days, or no silence long enough
            self.silences += 1
            decision = rec.decide_start(
                campaign,
                contact_id=history.contact_id,
                user_id=history.user_id,
                seq=i + 1,
                silent_since=silent_since,
                now=now,
                paid=history.paid_at is not None and history.paid_at <= now,
                blocked=history.blocked,
                last_episode_start=last_start,
                opted_out=history.opted_out,
            )
            if isinstance(decision, rec.NoEpisode):
                self.not_started[decision.reason] = self.not_started.get(decision.reason, 0) + 1
                continue
            self.episodes += 1
            last_start = decision.started_at
            if decision.holdout:
                self.holdout += 1
                continue
            self._episode(
                history, i + 1, decision.started_at, silent_since, back, campaign_tz, profile
            )

    def _episode(
        self,
        history: ContactHistory,
        seq: int,
        started_at: datetime,
        silent_since: datetime,
        back: datetime | None,
        campaign_tz: ZoneInfo,
        profile: HourProfile,
    ) -> None:
        campaign, settings = self.campaign, self.settings
        stages = [silent_since + after for after in settings.timeout_stages]
        stages = [s for s in stages if back is None or s < back]
        dues = rec.sourced_step_dues(campaign, started_at, history.zone, profile)
        for index, due, source in dues:
            figures = self.steps[index]
            if due >= settings.end:
                return  # past the replayed days
            # The engine's check before every step: has the contact come back since?
            state = rec.ContactNow(seq + 1 if back is not None and back <= due else seq)
            if rec.decide_end(seq, started_at, state) is not None:
                figures.returned_before += 1
                return
            figures.sent += 1
            figures.from_profile += source == "profile"
            figures.from_fallback += source == "fallback"
            if back is not None and back - due <= campaign.return_window:
                figures.wasted += 1
            if back is not None and back - due <= ACTIVE_WITHIN:
                figures.active_within_hour += 1
            if any(abs(due - s) < settings.collision_gap for s in stages):
                figures.collisions += 1
            at = due
            for block in campaign.steps[index].active_blocks:
                at += block.delay
                figures.messages += 1
                self.sends.append((_epoch(at), at.astimezone(campaign_tz).hour))

    def result(self) -> ReplayResult:
        by_hour = [0] * 24
        for _, hour in self.sends:
            by_hour[hour] += 1
        days = max(0, round((self.settings.end - self.settings.start) / timedelta(days=1)))
        return ReplayResult(
            contacts=self.contacts,
            contact_days=self.contacts * days,
            silences=self.silences,
            episodes_started=self.episodes,
            holdout=self.holdout,
            not_started=dict(sorted(self.not_started.items())),
            steps=[self.steps[i] for i in sorted(self.steps)],
            sends_by_hour=by_hour,
            queue=queue_estimate(self.sends, self.settings.rate),
        )


def queue_estimate(sends: list[tuple[float, int]], rate: float) -> QueueEstimate:
    """Sends paced one per 1/rate seconds in due order: the longest wait and its hour."""
    if not sends or rate <= 0:
        return QueueEstimate(rate, 0.0, None, 0)
    sends.sort()
    gap = 1.0 / rate
    free = float("-inf")
    peak, peak_hour = 0.0, None
    for at, hour in sends:
        start = max(at, free)
        free = start + gap
        if start - at > peak:
            peak, peak_hour = start - at, hour
    # Ahead of the send that waited longest: one message per 1/rate of its wait.
    return QueueEstimate(rate, round(peak, 3), peak_hour, round(peak * rate))


def replay(
    campaign: rec.Campaign, histories: Iterable[ContactHistory], settings: ReplaySettings
) -> ReplayResult:
    run = Replay(campaign, settings)
    run.add_all(histories)
    return run.result()


def as_fixed(campaign: rec.Campaign) -> rec.Campaign:
    """The campaign with every usual-hour step at its fallback time (for the comparison)."""
    return _with_schedules(
        campaign,
        lambda s: sch.DaysAt(s.days, s.fallback) if isinstance(s, sch.DaysUsual) else s,
    )


def as_usual(campaign: rec.Campaign) -> rec.Campaign:
    """The campaign with every "N days later at a time" step at the contact's usual hour,
    that time becoming the fallback (for the comparison)."""
    return _with_schedules(
        campaign, lambda s: sch.DaysUsual(s.days, s.at) if isinstance(s, sch.DaysAt) else s
    )


def _with_schedules(
    campaign: rec.Campaign, change: Callable[[sch.Schedule], sch.Schedule]
) -> rec.Campaign:
    steps = tuple(replace(step, schedule=change(step.schedule)) for step in campaign.steps)
    return replace(campaign, steps=steps)
