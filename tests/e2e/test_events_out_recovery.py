"""Recovery episodes told to a subscription: started, each step, and the end with its status
and reason (completed, or cancelled when the user came back), in each conversation's order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from reengage.runtime import Runtime
from tests.e2e.harness import MODES, runtime_in_mode
from tests.e2e.shop import CAMPAIGN, Shop
from tests.e2e.test_events_out import Receiver


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.up()
    yield r
    r.down()


def test_episodes_are_told_from_start_to_end_in_order(shop: Shop, receiver: Receiver) -> None:
    sub = shop.call(
        "post",
        "/v1/event-subscriptions",
        {"url": receiver.url, "event_types": ["episode.*", "contact.opted_out"]},
    )
    receiver.secret = sub["secret"]
    shop.launch(CAMPAIGN)
    shop.event("101")
    shop.event("102")
    shop.wait(timedelta(minutes=45))  # both silent: their episodes start, step 0 goes
    shop.event("102")  # back: their episode ends at once
    shop.wait(timedelta(days=1))  # 101's step 1, the last: completed
    shop.call("patch", f"/v1/bots/{shop.bot}/contacts/101", {"opted_out": True})
    shop.wait(timedelta(seconds=1))

    def told(user: str) -> list[tuple[str, object]]:
        out = []
        for a in receiver.arrivals:
            data = a.payload["data"]
            if data["contact"]["user_id"] == user:
                out.append((a.payload["type"], data.get("step", data.get("reason"))))
        return out

    assert told("101") == [
        ("episode.started", None),
        ("episode.step_sent", 0),
        ("episode.step_sent", 1),
        ("episode.ended", "completed"),
        ("contact.opted_out", "operator"),
    ]
    assert told("102")[:3] == [  # then silent again: another episode
        ("episode.started", None),
        ("episode.step_sent", 0),
        ("episode.ended", "user_active"),
    ]
    ended = [a.payload["data"] for a in receiver.arrivals if a.payload["type"] == "episode.ended"]
    assert {(d["status"], d["episode"]["status"]) for d in ended} == {
        ("completed", "completed"),
        ("cancelled", "cancelled"),
    }
    assert len(receiver.accepted) == len(receiver.arrivals)  # each once
