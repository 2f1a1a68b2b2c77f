"""A shop for the benches: an organization, Telegram bots with a live recovery campaign, and
the scheduler that runs their timers in this process."""

from __future__ import annotations

from typing import Any

from reengage.adapters.clock import ManualClock
from reengage.domain.activity import ChannelKind
from reengage.ports import TimerExecutor
from reengage.runtime import Runtime
from reengage.services import campaigns
from reengage.services.tenancy import create_bot, create_organization
from reengage.timers.executors import InlineExecutor
from reengage.timers.scheduler import Scheduler


def bots_with_campaign(
    runtime: Runtime, clock: ManualClock, bots: int, campaign: dict[str, Any], token_base: int
) -> tuple[int, list[int]]:
    """(org id, bot ids): `bots` Telegram bots (tokens `<token_base + i>:BENCH`), each with
    `campaign` published and enabled."""
    org = create_organization(runtime.sessions, "Bench", clock.now())
    bot_ids = [
        create_bot(
            runtime.sessions,
            runtime.credentials,
            org.org_id,
            name=f"b{i}",
            channel=ChannelKind.TELEGRAM,
            now=clock.now(),
            credentials={"token": f"{token_base + i}:BENCH"},
        ).id
        for i in range(bots)
    ]
    with runtime.sessions.begin() as session:
        for bot in bot_ids:
            campaigns.put_draft(session, org.org_id, bot, campaign, clock.now())
            campaigns.publish(session, org.org_id, bot, clock.now())
            campaigns.set_enabled(session, org.org_id, bot, True, clock.now())
    return org.org_id, bot_ids


def scheduler_of(
    runtime: Runtime, clock: ManualClock, executor: TimerExecutor | None = None
) -> Scheduler:
    """The production scheduler on the manual clock, in batches of 500, running its timers
    in this process unless another `executor` is given."""
    return Scheduler(
        sessions=runtime.sessions,
        store=runtime.timers,
        executor=executor or InlineExecutor(runtime),
        registry=runtime.registry,
        clock=clock,
        batch=500,
        activity=runtime.activity,
    )
