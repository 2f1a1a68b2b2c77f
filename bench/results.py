"""The campaign results query over 1,000,000 episodes.

PostgreSQL only (no Redis, no platform). One bot's campaign with two published versions and
two steps; N episodes over 30 days (10 % holdout; returns, payments, opt-outs and blocks
credited to a step; 70 % reach the second step) and their deliveries (one block per step:
sent, with WhatsApp-style delivered/read statuses, failed, skipped), written set-based with
`generate_series`, then `VACUUM ANALYZE`. Another bot's 10 % extra episodes share the tables
so that the query must pick its own. Then `campaign_results` — the service behind
`GET /v1/bots/{bot}/campaign/results` — runs several times over all history, over one week
and for one version; each figure is printed in milliseconds (min / median / max). The last
line is `results_query_ms=<median, all history>`. Run:

    .venv/bin/python bench/results.py [--quick] [--episodes N] [--runs K] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.migrate import upgrade
from reengage.config import Settings
from reengage.domain.activity import ChannelKind
from reengage.runtime import Runtime
from reengage.services import campaign_results as cr
from reengage.services import campaigns
from reengage.services.tenancy import create_bot, create_organization

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "reengage_bench_results"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
START = datetime(2026, 1, 1, tzinfo=UTC)
CAMPAIGN = {
    "threshold": "10m",
    "holdout_percent": 10,
    "steps": [
        {"schedule": "30m", "blocks": [{"kind": "text", "text": "Volte!"}]},
        {"schedule": "1d", "blocks": [{"kind": "text", "text": "Última chance"}]},
    ],
}

# Episodes of campaign :campaign, numbered :first..:last; `h` is a stable pseudo-random 0..999.
EPISODES = """
INSERT INTO recovery_episode (org_id, campaign_id, version, bot_id, contact_id, seq, holdout,
    status, end_reason, next_step, started_at, ended_at, last_step, last_sent_at,
    return_until, convert_until, returned_at, converted_at)
SELECT %(org)s, %(campaign)s, 1 + (g %% 2), %(bot)s, g, 1, h < 100,
    CASE WHEN h %% 10 = 1 THEN 'stopped' WHEN h %% 10 < 4 THEN 'cancelled' ELSE 'completed' END,
    CASE WHEN h %% 10 = 1 THEN (CASE WHEN h %% 20 = 1 THEN 'opted_out' ELSE 'blocked' END)
         WHEN h %% 10 < 4 THEN 'user_active' ELSE 'completed' END,
    2, t, t + interval '1 day 40 minutes', CASE WHEN h %% 10 < 3 THEN 0 ELSE 1 END,
    t + interval '40 minutes', t + interval '1 day 40 minutes', t + interval '7 days 40 minutes',
    CASE WHEN h %% 10 IN (2, 3, 5) THEN t + interval '2 hours' END,
    CASE WHEN h %% 10 = 3 THEN t + interval '3 hours' END
FROM (
    SELECT g, (hashint4(g) & 1023) %% 1000 AS h,
           timestamptz '2026-01-01' + (g * interval '30 days') / %(last)s::int AS t
    FROM generate_series(%(first)s::int, %(last)s::int) AS g
) AS s
"""
# One delivery per step reached: step 0 always, step 1 when the episode's last step is 1.
DELIVERIES = """
INSERT INTO delivery (org_id, bot_id, contact_id, episode_id, dedup_key, purpose,
    proactive_group, status, reason, message, channel_message_id, platform_status, attempts,
    retry_ambiguous, scheduled_at, sent_at, finished_at, step, step_lead,
    episode_started_at, episode_version, episode_holdout)
SELECT e.org_id, e.bot_id, e.contact_id, e.id, 'recovery:' || e.id || ':' || s || ':0',
    'recovery', 'recovery:' || e.id || ':' || s,
    CASE WHEN e.holdout THEN 'skipped' WHEN e.id %% 97 = 0 THEN 'failed'
         WHEN e.id %% 89 = 0 THEN 'skipped' ELSE 'sent' END,
    CASE WHEN e.holdout THEN 'holdout' WHEN e.id %% 97 = 0 THEN 'platform_failed'
         WHEN e.id %% 89 = 0 THEN 'window_closed' END,
    '{"kind": "text", "text": "Volte!"}', 'wamid.' || e.id || '.' || s,
    CASE WHEN e.holdout THEN NULL WHEN e.id %% 3 = 0 THEN 'read'
         WHEN e.id %% 3 = 1 THEN 'delivered' ELSE 'sent' END,
    1, false, e.started_at, e.started_at, e.started_at, s, true,
    e.started_at, e.version, e.holdout
FROM recovery_episode e, generate_series(0, 1) AS s
WHERE e.id BETWEEN %(first)s AND %(last)s AND s <= e.last_step
"""


def reset() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def campaign_for(runtime: Runtime, org_id: int, name: str, now: datetime) -> tuple[int, int]:
    bot = create_bot(
        runtime.sessions,
        runtime.credentials,
        org_id,
        name=name,
        channel=ChannelKind.WHATSAPP,
        now=now,
        credentials={"phone_number_id": "1", "access_token": "t", "app_secret": "s"},
    )
    with runtime.sessions.begin() as session:
        campaigns.put_draft(session, org_id, bot.id, CAMPAIGN, now)
        campaigns.publish(session, org_id, bot.id, now)
        campaigns.put_draft(session, org_id, bot.id, {**CAMPAIGN, "return_window": "12h"}, now)
        campaigns.publish(session, org_id, bot.id, now)
        return bot.id, campaigns.get_campaign(session, org_id, bot.id).id


def build(runtime: Runtime, episodes: int) -> tuple[int, int]:
    """The bench's bot, and its campaign's N episodes (plus another bot's N/10)."""
    now = START
    org = create_organization(runtime.sessions, "Bench", now)
    bot, campaign = campaign_for(runtime, org.org_id, "measured", now)
    other_bot, other = campaign_for(runtime, org.org_id, "other", now)
    extra = episodes // 10
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        for b, first, last in ((bot, 1, episodes), (other_bot, episodes + 1, episodes + extra)):
            conn.execute(
                "INSERT INTO contact (id, org_id, bot_id, external_id, created_at) "
                "SELECT g, %(org)s, %(bot)s, 'u' || g, %(now)s "
                "FROM generate_series(%(first)s::bigint, %(last)s) AS g",
                {"org": org.org_id, "bot": b, "now": now, "first": first, "last": last},
            )
        for c, b, first, last in (
            (campaign, bot, 1, episodes),
            (other, other_bot, episodes + 1, episodes + extra),
        ):
            params = {"org": org.org_id, "campaign": c, "bot": b, "first": first, "last": last}
            conn.execute(EPISODES, params)
            conn.execute(DELIVERIES, {"first": first, "last": last})
        conn.execute("SELECT setval('contact_id_seq', (SELECT max(id) FROM contact))")
        conn.execute("VACUUM ANALYZE")
    return org.org_id, bot


def timed(runs: int, query: Callable[[], object]) -> list[float]:
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        query()
        out.append((time.perf_counter() - began) * 1000)
    return out


def figures(name: str, ms: list[float]) -> float:
    median = statistics.median(ms)
    print(f"{name}_min={min(ms):.1f} {name}_median={median:.1f} {name}_max={max(ms):.1f}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100,000 episodes")
    parser.add_argument("--episodes", type=int, default=None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database (to EXPLAIN)")
    args = parser.parse_args()
    episodes = args.episodes or (100_000 if args.quick else 1_000_000)
    reset()
    upgrade(DB_URL)
    runtime = Runtime.build(Settings(database_url=DB_URL), clock=ManualClock(START))
    began = time.perf_counter()
    org_id, bot = build(runtime, episodes)
    with runtime.sessions() as session:
        stats = session.connection().exec_driver_sql(
            "SELECT (SELECT count(*) FROM recovery_episode), (SELECT count(*) FROM delivery)"
        )
        total_episodes, total_deliveries = stats.one()
    print(
        f"episodes={total_episodes} deliveries={total_deliveries} measured_bot_episodes={episodes}"
    )
    print(f"build_s={time.perf_counter() - began:.1f}")

    def query(filters: cr.Filters) -> Callable[[], object]:
        def run() -> object:
            with runtime.sessions() as session:
                return cr.campaign_results(session, org_id, bot, filters)

        return run

    result = query(cr.Filters())()
    assert isinstance(result, cr.Results)
    started = sum(v.treatment.started + v.holdout.started for v in result.versions)
    assert started == episodes, (started, episodes)
    week = cr.Filters(START + timedelta(days=7), START + timedelta(days=14))
    figures("results_week_ms", timed(args.runs, query(week)))
    figures("results_version_ms", timed(args.runs, query(cr.Filters(version=2))))
    median = figures("results_all_ms", timed(args.runs, query(cr.Filters())))
    runtime.engine.dispose()
    if not args.keep:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    print(f"results_query_ms={median:.1f}")


if __name__ == "__main__":
    main()
