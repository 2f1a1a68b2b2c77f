"""A user whose hot state left Redis while a recovery episode ran: the episode, its steps and
the conversation carry on from the database, and their return ends the episode."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from reengage.adapters.db.models import Conversation
from reengage.runtime import Runtime
from tests.e2e.harness import runtime_in_mode
from tests.e2e.shop import CAMPAIGN, Shop


@pytest.fixture(params=["sqlite+redis", "postgresql+redis"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path, hot_state_idle=timedelta(minutes=5))


def test_an_episode_survives_its_subject_leaving_redis_and_ends_when_the_user_returns(
    shop: Shop, runtime: Runtime
) -> None:
    shop.launch({**CAMPAIGN, "reentry_cooldown": "7d"})
    shop.event("103")
    shop.event("103")
    shop.wait(timedelta(minutes=41))  # silent at 10 min, step 1 at 40 min
    assert shop.heard("103") == ["Ei, esqueceu algo no carrinho?", "10% off"]
    # The silence fired 31 minutes ago: the subject is no longer in Redis.
    assert runtime.activity.hot_seq(shop.bot, "103") is None
    [episode] = shop.episodes()
    assert episode["status"] == "running"
    shop.event("103")  # the user is back: read from the database, version 3
    assert runtime.activity.hot_seq(shop.bot, "103") == 3
    shop.wait(timedelta(days=1))
    assert shop.heard("103") == ["Ei, esqueceu algo no carrinho?", "10% off"]
    [episode] = shop.episodes()
    assert (episode["status"], episode["end_reason"]) == ("cancelled", "user_active")
    with runtime.sessions() as s:
        assert s.scalars(select(Conversation.activity_seq)).all() == [3]
