"""The workload of a run, through the product's own doors: an organization (the service
behind `reengage orgs create`), bots and campaigns over the HTTP API, then users who each
write once (`POST /v1/events`) and stay silent.

Every bot gets the same two-step campaign; each text names its step, so a message the fake
accepted says which step it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from reengage.adapters.db.session import make_engine, make_session_factory
from reengage.services.tenancy import create_organization

THRESHOLD_S = 60  # the campaign's threshold and step schedules, in (accelerated) seconds
STEPS_S = (60, 120)
TOKEN_BASE = 81_000  # the fake reads a bot's id from its token: 81001:CHAOS, ...
USER_BASE = 700_000


def step_text(step: int) -> str:
    return f"[chaos step {step + 1}] Ainda por aí? Seu carrinho espera por você."


CAMPAIGN = {
    "threshold": f"{THRESHOLD_S // 60}m",
    "steps": [
        {"schedule": f"{seconds // 60}m", "blocks": [{"kind": "text", "text": step_text(i)}]}
        for i, seconds in enumerate(STEPS_S)
    ],
}


@dataclass(frozen=True)
class Workload:
    api_key: str
    bots: dict[int, int]  # reengage bot id -> the fake's bot id (numeric part of the token)
    users: dict[str, int]  # user id -> reengage bot id

    def expected(self) -> set[tuple[int, int, str]]:
        """(fake bot id, chat id, text) that must each be accepted exactly once."""
        return {
            (self.bots[bot], int(user), step_text(step))
            for user, bot in self.users.items()
            for step in range(len(STEPS_S))
        }


def sending_period(speed: float, write_window: float) -> tuple[float, float]:
    """Real seconds after the first write when step sends are due: first to last."""
    first = (THRESHOLD_S + STEPS_S[0]) / speed
    last = (THRESHOLD_S + sum(STEPS_S)) / speed + write_window
    return first, last


def create_org(db_url: str) -> str:
    """An organization and its API key (what `reengage orgs create` does, without paying for
    another process start: importing aiogram alone costs seconds of CPU)."""
    engine = make_engine(db_url)
    try:
        created = create_organization(make_session_factory(engine), "chaos", datetime.now(UTC))
    finally:
        engine.dispose()
    return created.api_key


def set_up(api: httpx.Client, api_key: str, bots: int, users: int) -> Workload:
    """Bots with a published, enabled campaign; users spread over them (none has written)."""
    api.headers["Authorization"] = f"Bearer {api_key}"
    ids: dict[int, int] = {}
    for i in range(1, bots + 1):
        token = f"{TOKEN_BASE + i}:CHAOS"
        body = {"name": f"chaos-{i}", "channel": "telegram", "credentials": {"token": token}}
        bot = _ok(api.post("/v1/bots", json=body))["id"]
        _ok(api.put(f"/v1/bots/{bot}/campaign", json=CAMPAIGN))
        _ok(api.post(f"/v1/bots/{bot}/campaign/publish"))
        _ok(api.put(f"/v1/bots/{bot}/campaign/enabled", json={"enabled": True}))
        ids[bot] = TOKEN_BASE + i
    order = list(ids)
    spread = {str(USER_BASE + u): order[u % len(order)] for u in range(users)}
    return Workload(api_key, ids, spread)


def write_once(api: httpx.Client, workload: Workload, window: float, batches: int = 10) -> None:
    """Every user writes one message, in `batches` spread evenly over `window` seconds."""
    users = list(workload.users.items())
    size = -(-len(users) // batches)
    start = time.monotonic()
    for n in range(batches):
        chunk = users[n * size : (n + 1) * size]
        events = [
            {"id": f"hello-{user}", "type": "message.user", "bot_id": bot, "user_id": user}
            for user, bot in chunk
        ]
        if events:
            _ok(api.post("/v1/events", json={"events": events}))
        time.sleep(max(0.0, start + (n + 1) * window / batches - time.monotonic()))


def _ok(response: httpx.Response) -> dict[str, object]:
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, object] = response.json()
    return body
