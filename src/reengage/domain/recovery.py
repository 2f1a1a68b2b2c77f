"""Recovery campaigns: the definition an operator publishes, and the decisions it drives."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    Template,
    message_problems,
)
from reengage.domain.results import DEFAULT_CONVERSION_WINDOW, DEFAULT_RETURN_WINDOW, MAX_WINDOW
from reengage.domain.usual_hour import HourProfile

DEFAULT_THRESHOLD = timedelta(minutes=10)
# WhatsApp's customer-service window: past it, only a template reaches the user.
WHATSAPP_WINDOW = timedelta(hours=24)
_NAME = re.compile(r"\{name(?:\|([^}]*))?\}")


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
    template: Template | None = None  # WhatsApp: an approved template (parameters may hold {name})

    def message(self, contact_name: str | None = None) -> OutboundMessage:
        """The message to send; a template's `{name}` (or `{name|fallback}`) parameters take
        the contact's name."""
        if self.template is not None:
            params = tuple(_with_name(p, contact_name) for p in self.template.parameters)
            template = Template(self.template.name, self.template.language, params)
            return OutboundMessage(MessageKind.TEMPLATE, template=template)
        media = Media(asset_id=self.asset_id, url=self.url) if self.kind in MEDIA_KINDS else None
        return OutboundMessage(self.kind, self.text, media)


def _with_name(parameter: str, name: str | None) -> str:
    def fill(match: re.Match[str]) -> str:
        return (name or "").strip() or (match[1] or "").strip() or "cliente"

    return _NAME.sub(fill, parameter)


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
    steps: tuple[Step, ...] = ()
    # A block whose send left without an answer: skipped (at most once) or sent once more.
    retry_ambiguous: bool = False
    # How long after the last step a contact received a return / a payment is credited to it.
    return_window: timedelta = DEFAULT_RETURN_WINDOW
    conversion_window: timedelta = DEFAULT_CONVERSION_WINDOW

    @property
    def sends_anything(self) -> bool:
        """A campaign with no active block allocates nothing."""
        return any(step.active_blocks for step in self.steps)

    def next_step(self, after: int = -1) -> int | None:
        """The first step after `after` with an active block: steps without any are skipped
        entirely (their schedule does not count)."""
        return next(
            (i for i in range(after + 1, len(self.steps)) if self.steps[i].active_blocks), None
        )


def _duration(value: Any, name: str, minimum: timedelta = timedelta(0)) -> timedelta:
    try:
        delta = parse_duration(str(value))
    except ValueError as exc:
        raise CampaignError(str(exc), name) from exc
    if delta < minimum:
        raise CampaignError(f"must be at least {minimum}", name)
    return delta


def _objects(raw: Any, name: str) -> list[Mapping[str, Any]]:
    """A list of JSON objects, or a CampaignError naming the first thing that is not one."""
    if not raw:
        return []
    if not isinstance(raw, list):
        raise CampaignError("must be a list", name)
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise CampaignError("must be an object", f"{name}[{i}]")
    return raw


def _block(raw: Mapping[str, Any], name: str) -> Block:
    try:
        kind = MessageKind(raw.get("kind", "text"))
    except ValueError as exc:
        raise CampaignError(f"unknown kind {raw.get('kind')!r}", f"{name}.kind") from exc
    if kind is MessageKind.TEMPLATE:
        return _template_block(raw, name)
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


def _template_block(raw: Mapping[str, Any], name: str) -> Block:
    """A WhatsApp template block: `template: {name, language, parameters}`."""
    spec = raw.get("template")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise CampaignError("a template block needs template.name", f"{name}.template.name")
    params = spec.get("parameters") or []
    if not isinstance(params, list) or not all(isinstance(p, str) and p for p in params):
        raise CampaignError("must be a list of texts", f"{name}.template.parameters")
    language = spec.get("language", "pt_BR")
    if not isinstance(language, str) or not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", language):
        raise CampaignError("a language code such as pt_BR or en", f"{name}.template.language")
    return Block(
        kind=MessageKind.TEMPLATE,
        delay=_duration(raw.get("delay", "0s"), f"{name}.delay"),
        active=bool(raw.get("active", True)),
        template=Template(spec["name"], language, tuple(params)),
    )


def parse_campaign(data: Mapping[str, Any]) -> Campaign:
    """A campaign from its JSON; raise CampaignError naming the field."""
    try:
        tz_name = str(data.get("time_zone", "America/Sao_Paulo"))
        sch.zone(tz_name)
        steps = []
        for i, raw in enumerate(_objects(data.get("steps"), "steps")):
            try:
                schedule = sch.parse_schedule(str(raw.get("schedule", "")))
            except sch.ScheduleError as exc:
                raise CampaignError(exc.message("en"), f"steps[{i}].schedule") from exc
            blocks = tuple(
                _block(b, f"steps[{i}].blocks[{j}]")
                for j, b in enumerate(_objects(raw.get("blocks"), f"steps[{i}].blocks"))
            )
            steps.append(Step(schedule, blocks))
        window = None
        if data.get("send_window"):
            w = data["send_window"]
            window = sch.parse_window(str(w.get("start")), str(w.get("end")), w.get("weekdays"))
    except sch.ScheduleError as exc:
        name = "time_zone" if exc.code == "zone" else "send_window"
        raise CampaignError(exc.message("en"), name) from exc
    on_ambiguous = data.get("on_ambiguous", "skip")
    if on_ambiguous not in ("skip", "retry_once"):
        raise CampaignError("must be skip or retry_once", "on_ambiguous")
    try:
        holdout = int(data.get("holdout_percent", 0))
    except (TypeError, ValueError) as exc:
        raise CampaignError("must be a whole number", "holdout_percent") from exc
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
        steps=tuple(steps),
        retry_ambiguous=on_ambiguous == "retry_once",
        return_window=_window(data, "return_window", DEFAULT_RETURN_WINDOW),
        conversion_window=_window(data, "conversion_window", DEFAULT_CONVERSION_WINDOW),
    )


def _window(data: Mapping[str, Any], name: str, default: timedelta) -> timedelta:
    """An attribution window: from 1 minute to `MAX_WINDOW`."""
    if data.get(name) is None:
        return default
    window = _duration(data[name], name, timedelta(minutes=1))
    if window > MAX_WINDOW:
        raise CampaignError(f"must be at most {MAX_WINDOW.days} days", name)
    return window


@dataclass(frozen=True, slots=True)
class StartEpisode:
    started_at: datetime
    holdout: bool


@dataclass(frozen=True, slots=True)
class NoEpisode:
    reason: str


def in_holdout(contact_id: int, seq: int, percent: int) -> bool:
    """A stable draw: the same episode is always in (or out of) the holdout group."""
    if percent <= 0:
        return False  # what the draw below gives for 0, without hashing
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
    excluded: bool = False,
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
    if excluded:
        return NoEpisode("excluded")
    if last_episode_start is not None and now - last_episode_start < campaign.reentry_cooldown:
        return NoEpisode("cooldown")
    return StartEpisode(
        silent_since + campaign.threshold, in_holdout(contact_id, seq, campaign.holdout_percent)
    )


def valid_until(campaign: Campaign, at: datetime, contact_zone: str | None = None) -> datetime:
    """How long a block due at `at` may still be sent, retries included: until the send window
    it falls in closes, or a day without a window."""
    if campaign.window is None:
        return at + timedelta(days=1)
    tz = sch.zone(contact_zone or campaign.time_zone)
    return sch.window_close(at, campaign.window, tz) or at + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class EndEpisode:
    """A running episode ends: `status` for `reason`, at `at` (None: now)."""

    status: str
    reason: str
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ContactNow:
    """What an episode's end depends on: the contact's latest activity and state."""

    seq: int | None
    last_activity_at: datetime | None = None
    paid_at: datetime | None = None
    blocked: bool = False
    opted_out: bool = False
    excluded: bool = False
    campaign_enabled: bool = True


def decide_end(episode_seq: int, started_at: datetime, contact: ContactNow) -> EndEpisode | None:
    """Whether a running episode ends, and how — the one rule, applied where each event lands
    (a return or a payment at the write-behind, a block, an opt-out, an exclusion, the switch)
    and again before every step: `converted` when they paid after it started, `cancelled`
    when they came back (at the moment they did), `stopped` when they may not be written to."""
    if contact.paid_at is not None and contact.paid_at >= started_at:
        return EndEpisode("converted", "paid", contact.paid_at)
    if contact.seq is not None and contact.seq != episode_seq:
        return EndEpisode("cancelled", "user_active", contact.last_activity_at)
    for stopped, reason in (
        (contact.blocked, "blocked"),
        (contact.opted_out, "opted_out"),
        (not contact.campaign_enabled, "campaign_disabled"),
        (contact.excluded, "excluded"),
    ):
        if stopped:
            return EndEpisode("stopped", reason)
    return None


def step_due(
    campaign: Campaign,
    index: int,
    anchor: datetime,
    contact_zone: str | None = None,
    profile: HourProfile | None = None,
) -> datetime:
    """When step `index` is due, anchored at the episode start or the previous step's send
    (a usual-hour step reads the contact's hour-of-week `profile`)."""
    return step_due_sourced(campaign, index, anchor, contact_zone, profile)[0]


def step_due_sourced(
    campaign: Campaign,
    index: int,
    anchor: datetime,
    contact_zone: str | None = None,
    profile: HourProfile | None = None,
) -> tuple[datetime, str]:
    """`step_due`, and where its time came from (`schedule.due_and_source`)."""
    tz: ZoneInfo = sch.zone(contact_zone or campaign.time_zone)
    return sch.due_and_source(campaign.steps[index].schedule, anchor, tz, campaign.window, profile)


@dataclass(frozen=True, slots=True)
class PreviewStep:
    index: int
    due_at: datetime
    local: datetime
    description: str
    blocks: Sequence[Block]
    source: str = "fixed"  # profile / fallback / fixed: `schedule.due_and_source`


def preview(
    campaign: Campaign,
    last_activity: datetime,
    contact_zone: str | None = None,
    language: str = "pt-BR",
    profile: HourProfile | None = None,
) -> list[PreviewStep]:
    """What a user quiet since `last_activity` would receive, and when (the engine's code)."""
    tz = sch.zone(contact_zone or campaign.time_zone)
    out = []
    started = last_activity + campaign.threshold
    for index, due, source in sourced_step_dues(campaign, started, contact_zone, profile):
        step = campaign.steps[index]
        out.append(
            PreviewStep(
                index,
                due,
                due.astimezone(tz),
                sch.describe(step.schedule, language),
                step.active_blocks,
                source,
            )
        )
    return out


def step_dues(
    campaign: Campaign,
    started_at: datetime,
    contact_zone: str | None = None,
    profile: HourProfile | None = None,
) -> list[tuple[int, datetime]]:
    """Every step that sends, with its due time, for an episode started at `started_at`:
    the first at its schedule from the start, each next one from the previous one's."""
    return [
        (i, due) for i, due, _ in sourced_step_dues(campaign, started_at, contact_zone, profile)
    ]


def sourced_step_dues(
    campaign: Campaign,
    started_at: datetime,
    contact_zone: str | None = None,
    profile: HourProfile | None = None,
) -> list[tuple[int, datetime, str]]:
    """`step_dues`, each with where its time came from."""
    out: list[tuple[int, datetime, str]] = []
    anchor, index = started_at, campaign.next_step()
    while index is not None:
        anchor, source = step_due_sourced(campaign, index, anchor, contact_zone, profile)
        out.append((index, anchor, source))
        index = campaign.next_step(index)
    return out


def window_warnings(campaign: Campaign, language: str = "pt-BR") -> list[str]:
    """What `late_steps` says, as a list."""
    return list(late_steps(campaign, language).values())


def late_steps(campaign: Campaign, language: str = "pt-BR") -> dict[int, str]:
    """Steps whose free-form blocks can reach a WhatsApp contact 24 h or more after their
    last message, when only a template gets through (those blocks would be skipped with
    `window_closed`), each with its warning. Checked for a contact quiet since each hour of
    a week."""
    late: set[int] = set()
    base = datetime(2026, 1, 5, tzinfo=sch.zone(campaign.time_zone))  # a Monday, 00:00
    for hour in range(7 * 24):
        last_activity = base + timedelta(hours=hour)
        for index, due in step_dues(campaign, last_activity + campaign.threshold):
            at = due
            for block in campaign.steps[index].active_blocks:
                at += block.delay
                if block.template is None and at - last_activity >= WHATSAPP_WINDOW:
                    late.add(index)
    pt = language != "en"
    return {
        i: f"A etapa {i + 1} pode sair 24 h ou mais depois da última mensagem do contato: no "
        "WhatsApp só um template chega, e os outros blocos serão pulados (window_closed)."
        if pt
        else f"Step {i + 1} can go out 24 h or more after the contact's last message: on "
        "WhatsApp only a template gets through, other blocks will be skipped (window_closed)."
        for i in sorted(late)
    }


def is_optout(campaign: Campaign, text: str) -> bool:
    """The whole message is one of the campaign's opt-out keywords (case-insensitive)."""
    return text.strip().lower() in campaign.optout_keywords
