"""Whether a recovery campaign works: which step a return or a payment is credited to, the
funnel per version and step, and the holdout's lift with its confidence interval."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

DEFAULT_RETURN_WINDOW = timedelta(hours=24)
DEFAULT_CONVERSION_WINDOW = timedelta(days=7)
# The longest window a campaign may set: attribution stays cheap (a contact's recent
# episodes only) and an operator's figures settle within this long.
MAX_WINDOW = timedelta(days=30)
# Below these, the lift is "not enough data": each arm needs this many episodes, and the two
# arms together this many successes (returns, or conversions).
MIN_EPISODES = 30
MIN_SUCCESSES = 5
Z_95 = 1.959963984540054
LIFT_METHOD = "newcombe_hybrid_score"
# Episodes a stop ends (opt-out, block, exclusion, the switch) credit nothing afterwards.
STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Attribution:
    """An episode as attribution sees it: the silence it began for, the last step the contact
    received (`last_sent_at`; a holdout episode's steps "go out" without a message), the
    windows that step opened, and what was credited already."""

    seq: int
    status: str
    last_sent_at: datetime | None
    return_until: datetime | None
    convert_until: datetime | None
    returned_at: datetime | None = None
    converted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Credit:
    """What to record on an episode: a return, a conversion (None: nothing new)."""

    returned_at: datetime | None = None
    converted_at: datetime | None = None


def decide_credit(
    episode: Attribution, seq: int, last_activity_at: datetime | None, paid_at: datetime | None
) -> Credit | None:
    """Credit the contact's latest activity (a return: their activity moved past the silence)
    and payment to the last step they received, each within its window after that step —
    while the episode runs and after it ended, unless a stop ended it."""
    sent = episode.last_sent_at
    if sent is None or episode.status == STOPPED:
        return None
    returned = converted = None
    if (
        episode.returned_at is None
        and seq != episode.seq
        and _within(last_activity_at, sent, episode.return_until)
    ):
        returned = last_activity_at
    if episode.converted_at is None and _within(paid_at, sent, episode.convert_until):
        converted = paid_at
    if returned is None and converted is None:
        return None
    return Credit(returned, converted)


def _within(at: datetime | None, after: datetime, until: datetime | None) -> bool:
    return at is not None and until is not None and after < at <= until


# --- the lift -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lift:
    """Treatment rate minus holdout rate, with its 95 % interval (None: not enough data)."""

    treatment: tuple[int, int]  # (successes, episodes)
    holdout: tuple[int, int]
    difference: float | None
    low: float | None
    high: float | None

    @property
    def enough_data(self) -> bool:
        return self.difference is not None


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for one proportion."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    denominator = 1 + z * z / trials
    return (max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator))


def newcombe(s1: int, n1: int, s2: int, n2: int, z: float = Z_95) -> tuple[float, float, float]:
    """p1 - p2 with Newcombe's hybrid score interval (1998, method 10): Wilson's interval of
    each proportion, combined; sound for small counts and rates near 0 or 1, unlike Wald's."""
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson(s1, n1, z)
    l2, u2 = wilson(s2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


def lift(treatment: tuple[int, int], holdout: tuple[int, int]) -> Lift:
    """The lift of the treatment over the holdout, or not enough data below the minimum
    (each arm `MIN_EPISODES` episodes, both together `MIN_SUCCESSES` successes)."""
    (s1, n1), (s2, n2) = treatment, holdout
    if min(n1, n2) < MIN_EPISODES or s1 + s2 < MIN_SUCCESSES:
        return Lift(treatment, holdout, None, None, None)
    d, low, high = newcombe(s1, n1, s2, n2)
    return Lift(treatment, holdout, d, low, high)


# --- the funnel -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EpisodeGroup:
    """Episodes of one version and arm whose last step received is `last_step` (None: none)."""

    version: int
    holdout: bool
    last_step: int | None
    episodes: int
    returned: int
    converted: int
    opted_out: int
    blocked: int


@dataclass(frozen=True, slots=True)
class DeliveryGroup:
    """Steps of one version and arm: how many episodes' step `step` ended so (its first
    block's status, skip reason and platform status)."""

    version: int
    holdout: bool
    step: int
    status: str
    reason: str | None
    platform_status: str | None
    count: int


@dataclass(slots=True)
class StepCounts:
    """One step in one arm. Without receipts (Telegram), sent counts as delivered and `read`
    is None: the channel does not tell."""

    reached: int = 0
    sent: int = 0
    delivered: int | None = 0
    read: int | None = 0
    failed: int = 0
    pending: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    returned: int = 0
    converted: int = 0
    opted_out: int = 0
    blocked: int = 0


@dataclass(slots=True)
class ArmCounts:
    started: int = 0
    returned: int = 0
    converted: int = 0
    opted_out: int = 0
    blocked: int = 0


@dataclass(slots=True)
class VersionResults:
    version: int
    treatment: ArmCounts = field(default_factory=ArmCounts)
    holdout: ArmCounts = field(default_factory=ArmCounts)
    steps: dict[int, tuple[StepCounts, StepCounts]] = field(default_factory=dict)

    def arm(self, holdout: bool) -> ArmCounts:
        return self.holdout if holdout else self.treatment

    def step(self, index: int, holdout: bool, receipts: bool) -> StepCounts:
        if index not in self.steps:
            self.steps[index] = (_step_counts(receipts), _step_counts(receipts))
        return self.steps[index][1 if holdout else 0]

    @property
    def return_lift(self) -> Lift:
        t, h = self.treatment, self.holdout
        return lift((t.returned, t.started), (h.returned, h.started))

    @property
    def conversion_lift(self) -> Lift:
        t, h = self.treatment, self.holdout
        return lift((t.converted, t.started), (h.converted, h.started))


def _step_counts(receipts: bool) -> StepCounts:
    return StepCounts() if receipts else StepCounts(read=None)


def funnel(
    episodes: Iterable[EpisodeGroup], steps: Iterable[DeliveryGroup], receipts: bool
) -> list[VersionResults]:
    """The funnel per version and step from the two aggregates. `receipts`: the channel
    reports delivered and read (WhatsApp); otherwise a sent message counts as delivered."""
    out: dict[int, VersionResults] = {}
    for g in episodes:
        v = out.setdefault(g.version, VersionResults(g.version))
        arm = v.arm(g.holdout)
        arm.started += g.episodes
        arm.returned += g.returned
        arm.converted += g.converted
        arm.opted_out += g.opted_out
        arm.blocked += g.blocked
        if g.last_step is not None:
            s = v.step(g.last_step, g.holdout, receipts)
            s.returned += g.returned
            s.converted += g.converted
            s.opted_out += g.opted_out
            s.blocked += g.blocked
    for d in steps:
        v = out.setdefault(d.version, VersionResults(d.version))
        _count_step(v.step(d.step, d.holdout, receipts), d, receipts)
    return [out[k] for k in sorted(out)]


def _count_step(s: StepCounts, d: DeliveryGroup, receipts: bool) -> None:
    s.reached += d.count
    if d.status == "sent":
        s.sent += d.count
        if receipts and s.delivered is not None and s.read is not None:
            s.delivered += d.count if d.platform_status in ("delivered", "read") else 0
            s.read += d.count if d.platform_status == "read" else 0
        elif s.delivered is not None:
            s.delivered += d.count
    elif d.status == "failed":
        s.failed += d.count
    elif d.status == "skipped":
        reason = d.reason or "unknown"
        s.skipped[reason] = s.skipped.get(reason, 0) + d.count
    else:
        s.pending += d.count


def valid_range(start: datetime | None, end: datetime | None) -> bool:
    """A date range is valid when it is open at either end or runs forwards."""
    return start is None or end is None or start < end
