"""Prometheus metrics: the instruments every process updates (docs/operations.md lists them,
which process exports each, and the alerts built on them).

Labels are bounded: purposes, channels, statuses, reasons and kinds are the code's own
words; a bot is its id (an operator has hundreds, not millions); a user or a contact never
appears. Counters move where the work is decided, at a cost of a microsecond or two (one
labelled child looked up, one add); gauges that need a store's answer are set by the
scheduler at most once a second, never per claim.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_RECORDED = Counter("reengage_events_recorded_total", "Activity events accepted", ["outcome"])
TIMERS_FIRED = Counter("reengage_timers_fired_total", "Timers executed", ["purpose"])
TIMER_LATENESS = Histogram(
    "reengage_timer_lateness_seconds",
    "Delay between a timer's due time and its execution (where it runs: the scheduler "
    "inline, or a worker)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
DELIVERIES = Counter(
    "reengage_deliveries_total",
    "Messages settled, by purpose, channel, status (sent, failed, skipped, scheduled for a "
    "retry) and reason (ambiguous, blocked, window_closed, server_error, ...)",
    ["purpose", "channel", "status", "reason"],
)
BOT_DELIVERIES = Counter(
    "reengage_bot_deliveries_total",
    "Messages settled per bot, by status only (the failure rate of one bot)",
    ["bot", "status"],
)
PLATFORM_ERRORS = Counter(
    "reengage_platform_errors_total",
    "Requests a platform refused or never answered, by channel and kind: rate_limited (429), "
    "forbidden (403), unauthorized, client_error (other 4xx), server_error (5xx), timeout, "
    "network (no connection), bad_response (unreadable)",
    ["channel", "kind"],
)
EPISODES_STARTED = Counter(
    "reengage_episodes_started_total", "Recovery episodes started by a silence"
)
EPISODES_ENDED = Counter(
    "reengage_episodes_ended_total",
    "Recovery episodes ended, by outcome (converted, cancelled, stopped, completed) and "
    "reason (paid, user_active, blocked, opted_out, campaign_disabled, excluded, completed)",
    ["outcome", "reason"],
)
PACING_HOLDS = Counter(
    "reengage_pacing_holds_total",
    "Sends the per-bot pacer held: `slept` (waited for a slot close by) or `handed_back` "
    "(sent again at a slot further away)",
    ["channel", "bot", "hold"],
)
TIMERS_CLAIMED = Counter(
    "reengage_timers_claimed_total",
    "Timers claimed by schedulers: `first`, or `again` after a lease ran out (work redone)",
    ["claim"],
)
TIMERS_IN_FLIGHT = Gauge(
    "reengage_timers_in_flight",
    "Claimed timers neither done nor past their lease, as a scheduler last saw them",
    multiprocess_mode="max",
)
TIMERS_DUE = Gauge(
    "reengage_timers_due",
    "Timers due (claimable) and not claimed yet, as a scheduler last counted them",
    multiprocess_mode="livemax",
)
TIMERS_OLDEST_DUE_AGE = Gauge(
    "reengage_timers_oldest_due_age_seconds",
    "How long the oldest claimable timer has been waiting for a claim (0: none)",
    multiprocess_mode="livemax",
)
WRITE_BEHIND_PENDING = Gauge(
    "reengage_write_behind_pending",
    "Subjects whose activity is in Redis but not yet written to the database",
    multiprocess_mode="livemax",
)
WRITE_BEHIND_LAG = Gauge(
    "reengage_write_behind_lag_seconds",
    "Age bound of the oldest activity not yet in the database: seconds since a scheduler "
    "last saw nothing waiting to be written",
    multiprocess_mode="livemax",
)
WRITE_BEHIND_FLUSHED = Counter(
    "reengage_write_behind_flushed_total", "Subjects written from Redis to the database"
)
HOT_STATE_EXPIRED = Counter(
    "reengage_hot_state_expired_total",
    "Quiet subjects whose hot state left Redis (reloaded from the database on return)",
)


def delivery_settled(purpose: str, channel: str, bot: int, status: str, reason: str | None) -> None:
    """One delivery's outcome (or its retry)."""
    DELIVERIES.labels(purpose, channel, status, reason or "").inc()
    BOT_DELIVERIES.labels(str(bot), status).inc()


def platform_error(channel: str, kind: str) -> None:
    """A platform's refusal, or a request without an answer."""
    PLATFORM_ERRORS.labels(channel, kind).inc()


def http_error_kind(status: int) -> str:
    """The kind of an HTTP refusal."""
    if status == 429:
        return "rate_limited"
    if status == 403:
        return "forbidden"
    if status == 401:
        return "unauthorized"
    if status >= 500:
        return "server_error"
    return "client_error"


def pacing_hold(channel: str, bot: str, hold: str) -> None:
    PACING_HOLDS.labels(channel, bot, hold).inc()


def episodes_ended(outcome: str, reason: str | None, count: int = 1) -> None:
    if count:
        EPISODES_ENDED.labels(outcome, reason or outcome).inc(count)
