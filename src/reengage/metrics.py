"""Prometheus metrics: the instruments every process updates."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_RECORDED = Counter("reengage_events_recorded_total", "Activity events accepted", ["outcome"])
TIMERS_FIRED = Counter("reengage_timers_fired_total", "Timers executed", ["purpose"])
TIMER_LATENESS = Histogram(
    "reengage_timer_lateness_seconds",
    "Delay between a timer's due time and its execution",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
DELIVERIES = Counter(
    "reengage_deliveries_total",
    "Messages settled, by purpose, status (sent, failed, skipped, scheduled for a retry) and "
    "reason (ambiguous, blocked, window_closed, server_error, ...)",
    ["purpose", "status", "reason"],
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
