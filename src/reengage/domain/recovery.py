"""Recovery campaigns: the definition an operator publishes, and the decisions it drives."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from reengage.domain import schedule as sch
from reengage.domain.duration import parse_duration
from reengage.domain.outbound import (
    MEDIA_KINDS,
    Media,
    MessageKind,
    OutboundMessage,
    message_problems,
)

DEFAULT_THRESHOLD = timedelta(minutes=10)


class CampaignError(ValueError):
    def __init__(self, message: str, field_name: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class Block:
    kind: MessageKind
    text: str | None = None  # the text, or the caption of a media block
    url: str | None = None
    asset_id: int | None = None
    delay: timedelta = timedelta(0)  # shown as typing/uploading before the send
    auto_delete_after: timedelta | None = None
    active: bool = True

    def message(self) -> OutboundMessage:
        media = Media(asset_id=self.asset_id, url=self.url) if self.kind in MEDIA_KINDS else None
        return OutboundMessage(self.kind, self.text, media)


@dataclass(frozen=True, slots=True)
class Step:
    schedule: sch.Schedule
    blocks: tuple[Block, ...]

    @property
    def active_blocks(self) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.active)


@dataclass(frozen=True, slots=True)
class Campaign:
    time_zone: str = "America/Sao_Paulo"
    threshold: timedelta = DEFAULT_THRESHOLD
    ignore_paid: bool = True
    window: sch.SendWindow | None = None
    reentry_cooldown: timedelta = timedelta(0)
    holdout_percent: int = 0
    optout_keywords: tuple[str, ...] = ()
    exclusions: frozenset[str] = field(default_factory=frozenset)
    steps: tuple[Step, ...] = ()

    @property
    def sends_anything(self) -> bool:
        """A campaign with no active block allocates nothing."""
        return any(step.active_blocks for step in self.steps)


def _duration(value: Any, name: str, minimum: timedelta = timedelta(0)) -> timedelta:
    try:
        delta = parse_duration(str(value))
    except ValueError as exc:
        raise CampaignError(str(exc), name) from exc
    if delta < minimum:
        raise CampaignError(f"must be at least {minimum}", name)
    return delta


def _block(raw: Mapping[str, Any], name: str) -> Block:
    try:
        kind = MessageKind(raw.get("kind", "text"))
    except ValueError as exc:
        raise CampaignError(f"unknown kind {raw.get('kind')!r}", f"{name}.kind") from exc
    if kind is MessageKind.TEMPLATE:
        raise CampaignError("templates are not blocks", f"{name}.kind")
    after = raw.get("auto_delete_after")
    block = Block(
        kind=kind,
        text=raw.get("text") or raw.get("caption"),
        url=raw.get("url"),
        asset_id=raw.get("asset_id"),
        delay=_duration(raw.get("delay", "0s"), f"{name}.delay"),
        auto_delete_after=None
        if after is None
        else _duration(after, f"{name}.auto_delete_after", timedelta(minutes=1)),
        active=bool(raw.get("active", True)),
    )
    if kind in MEDIA_KINDS and not (block.url or block.asset_id):
        raise CampaignError(f"a {kind.value} block needs a url or an asset_id", name)
    problems = message_problems(block.message())
    if problems:
        raise CampaignError(problems[0], name)
    return block


def parse_campaign(data: Mapping[str, Any]) -> Campaign:
    """A campaign from its JSON; raise CampaignError naming the field."""
    try:
        tz_name = str(data.get("time_zone", "America/Sao_Paulo"))
        sch.zone(tz_name)
        steps = []
        for i, raw in enumerate(data.get("steps") or []):
            try:
                schedule = sch.parse_schedule(str(raw.get("schedule", "")))
            except sch.ScheduleError as exc:
                raise CampaignError(exc.message("en"), f"steps[{i}].schedule") from exc
            blocks = tuple(
                _block(b, f"steps[{i}].blocks[{j}]") for j, b in enumerate(raw.get("blocks") or [])
            )
            steps.append(Step(schedule, blocks))
        window = None
        if data.get("send_window"):
            w = data["send_window"]
            window = sch.parse_window(str(w.get("start")), str(w.get("end")), w.get("weekdays"))
    except sch.ScheduleError as exc:
        name = "time_zone" if exc.code == "zone" else "send_window"
        raise CampaignError(exc.message("en"), name) from exc
    holdout = int(data.get("holdout_percent", 0))
    if not 0 <= holdout <= 100:
        raise CampaignError("must be between 0 and 100", "holdout_percent")
    return Campaign(
        time_zone=tz_name,
        threshold=_duration(data.get("threshold", "10m"), "threshold", timedelta(minutes=1)),
        ignore_paid=bool(data.get("ignore_paid", True)),
        window=window,
        reentry_cooldown=_duration(data.get("reentry_cooldown", "0s"), "reentry_cooldown"),
        holdout_percent=holdout,
        optout_keywords=tuple(str(k).strip().lower() for k in data.get("optout_keywords") or ()),
        exclusions=frozenset(str(u) for u in data.get("exclusions") or ()),
        steps=tuple(steps),
    )


@dataclass(frozen=True, slots=True)
class StartEpisode:
    started_at: datetime
    holdout: bool


@dataclass(frozen=True, slots=True)
class NoEpisode:
    reason: str


def in_holdout(contact_id: int, seq: int, percent: int) -> bool:
    """A stable draw: the same episode is always in (or out of) the holdout group."""
    digest = hashlib.sha256(f"{contact_id}:{seq}".encode()).digest()
    return int.from_bytes(digest[:2], "big") % 100 < percent


def decide_start(
    campaign: Campaign,
    *,
    contact_id: int,
    user_id: str,
    seq: int,
    silent_since: datetime,
    now: datetime,
    paid: bool,
    blocked: bool,
    last_episode_start: datetime | None,
    opted_out: bool = False,
) -> StartEpisode | NoEpisode:
    """Whether this silence starts an episode."""
    if not campaign.sends_anything:
        return NoEpisode("no_active_blocks")
    if now < silent_since + campaign.threshold:
        return NoEpisode("not_due")
    if blocked:
        return NoEpisode("blocked")
    if opted_out:
        return NoEpisode("opted_out")
    if paid and campaign.ignore_paid:
        return NoEpisode("paid")
    if user_id in campaign.exclusions:
        return NoEpisode("excluded")
    if last_episode_start is not None and now - last_episode_start < campaign.reentry_cooldown:
        return NoEpisode("cooldown")
    return StartEpisode(
        silent_since + campaign.threshold, in_holdout(contact_id, seq, campaign.holdout_percent)
    )


def step_due(
    campaign: Campaign, index: int, anchor: datetime, contact_zone: str | None = None
) -> datetime:
    """When step `index` is due, anchored at the episode start or the previous step's send."""
    tz: ZoneInfo = sch.zone(contact_zone or campaign.time_zone)
    return sch.next_due(campaign.steps[index].schedule, anchor, tz, campaign.window)


@dataclass(frozen=True, slots=True)
class PreviewStep:
    index: int
    due_at: datetime
    local: datetime
    description: str
    blocks: Sequence[Block]


def preview(
    campaign: Campaign,
    last_activity: datetime,
    contact_zone: str | None = None,
    language: str = "pt-BR",
) -> list[PreviewStep]:
    """What a user quiet since `last_activity` would receive, and when (the engine's code)."""
    tz = sch.zone(contact_zone or campaign.time_zone)
    anchor = last_activity + campaign.threshold
    out = []
    for index, step in enumerate(campaign.steps):
        if not step.active_blocks:
            continue
        due = step_due(campaign, index, anchor, contact_zone)
        out.append(
            PreviewStep(
                index,
                due,
                due.astimezone(tz),
                sch.describe(step.schedule, language),
                step.active_blocks,
            )
        )
        anchor = due
    return out


def is_optout(campaign: Campaign, text: str) -> bool:
    """The whole message is one of the campaign's opt-out keywords (case-insensitive)."""
    return text.strip().lower() in campaign.optout_keywords
