"""`POST /v1/bots/{bot}/campaign/replay` over a scripted history: exact counts, read from the
database the activity was recorded in, and not a row changed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models.base import Base
from reengage.domain.activity import EventType, Inbound
from reengage.runtime import Runtime
from reengage.services import campaign_replay
from tests.e2e.conftest import Tenant
from tests.factories import message
from tests.manager_console import Console

ADMIN = 5_550_001


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


DRAFT = {
    "time_zone": "UTC",
    "threshold": "10m",
    "steps": [
        {"schedule": "30m", "blocks": [{"text": "still there?"}]},
        {"schedule": "tomorrow 09:00", "blocks": [{"text": "hi"}, {"text": "offer"}]},
    ],
}
# The unit test's script (tests/unit/test_replay.py), through the product's own recording.
SCRIPT = {
    "a": [at(2, 10)],
    "b": [at(2, 10), at(2, 10, 5), at(2, 10, 50)],
    "c": [at(2, 10), at(2, 10, 20)],
    "d": [at(2, 10)],
    "e": [at(8, 23, 55)],
    "f": [at(4, 8), at(5, 8, 30)],
}


def snapshot(runtime: Runtime) -> dict[str, list[Any]]:
    with runtime.sessions() as s:
        return {
            t.name: sorted(map(repr, s.execute(select(t)).all()))
            for t in Base.metadata.sorted_tables
        }


def record_script(runtime: Runtime, tenant: Tenant) -> None:
    for user, instants in SCRIPT.items():
        for i, instant in enumerate(instants):
            said = Inbound(text="oi") if i % 2 == 0 else None  # both logs are read
            runtime.record(tenant.org_id, [message(tenant.bot_id, user, instant, inbound=said)])
    paid = message(tenant.bot_id, "d", at(1, 12), EventType.PAYMENT_CONFIRMED)
    runtime.record(tenant.org_id, [paid])


def test_replay_gives_exact_counts_and_writes_nothing(
    runtime: Runtime, tenant: Callable[[str], Tenant], clock: ManualClock
) -> None:
    shop = tenant("shop")
    clock.set(at(1, 0))
    record_script(runtime, shop)
    assert shop.client.put(
        f"/v1/bots/{shop.bot_id}/campaign", json=DRAFT, headers=shop.headers
    ).status_code == 200  # fmt: skip
    clock.set(at(9, 0))
    before = snapshot(runtime)
    answer = shop.post(f"/v1/bots/{shop.bot_id}/campaign/replay", {"days": 7})
    assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    assert body["status"] == "done"
    assert body["progress"] == {"contacts_done": 6, "contacts_total": 6}
    result = body["result"]
    assert (result["contacts"], result["contact_days"]) == (6, 42)
    assert (result["silences"], result["episodes_started"]) == (8, 7)
    assert result["not_started"] == {"paid": 1}
    first, second = result["steps"]
    assert (first["sent"], first["messages"], first["returned_before"], first["wasted"]) == (
        6,
        6,
        1,
        2,
    )
    assert (second["sent"], second["messages"], second["returned_before"]) == (4, 8, 2)
    assert result["sends_by_hour"][9] == 9
    # Telegram's pacing, 28 messages/s: the 09:00 herd of 3 March (6 at once) waits 5/28 s.
    assert result["queue"] == {
        "rate_per_second": 28.0,
        "peak_wait_seconds": 0.179,
        "peak_hour": 9,
        "peak_backlog": 5,
    }
    assert result["usual_vs_fixed"]["sends_fixed"] == 10
    job = shop.get(f"/v1/bots/{shop.bot_id}/campaign/replay/{body['job_id']}")
    assert job.json()["result"] == result  # type: ignore[attr-defined]
    assert snapshot(runtime) == before


def test_a_large_bot_is_replayed_as_a_job_with_progress(
    runtime: Runtime, tenant: Callable[[str], Tenant], clock: ManualClock, monkeypatch: Any
) -> None:
    monkeypatch.setattr(campaign_replay, "INLINE_CONTACTS", 2)
    monkeypatch.setattr(campaign_replay, "CHUNK", 2)
    shop = tenant("big")
    clock.set(at(1, 0))
    record_script(runtime, shop)
    shop.client.put(f"/v1/bots/{shop.bot_id}/campaign", json=DRAFT, headers=shop.headers)
    clock.set(at(9, 0))
    answer = shop.post(f"/v1/bots/{shop.bot_id}/campaign/replay", {"days": 7})
    assert answer.status_code in (200, 202)  # type: ignore[attr-defined]
    job_id = answer.json()["job_id"]  # type: ignore[attr-defined]
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    state = answer.json()  # type: ignore[attr-defined]
    while state["status"] == "running" and datetime.now(UTC) < deadline:
        state = shop.get(f"/v1/bots/{shop.bot_id}/campaign/replay/{job_id}").json()  # type: ignore[attr-defined]
    assert state["status"] == "done"
    assert state["progress"] == {"contacts_done": 6, "contacts_total": 6}
    assert state["result"]["episodes_started"] == 7


def test_bad_input_is_refused_without_a_job(tenant: Callable[[str], Tenant]) -> None:
    shop = tenant("refused")
    too_many = shop.post(f"/v1/bots/{shop.bot_id}/campaign/replay", {"days": 91})
    assert too_many.status_code == 422  # type: ignore[attr-defined]
    other = tenant("other")
    foreign = other.post(f"/v1/bots/{shop.bot_id}/campaign/replay", {"days": 7})
    assert foreign.status_code == 404  # type: ignore[attr-defined]
    missing = shop.get(f"/v1/bots/{shop.bot_id}/campaign/replay/nope")
    assert missing.status_code == 404  # type: ignore[attr-defined]


def test_the_manager_bot_shows_the_replay_in_words(
    runtime: Runtime, tenant: Callable[[str], Tenant], clock: ManualClock, console: Console
) -> None:
    shop = tenant("shop")
    clock.set(at(1, 0))
    record_script(runtime, shop)
    shop.client.put(f"/v1/bots/{shop.bot_id}/campaign", json=DRAFT, headers=shop.headers)
    clock.set(at(9, 0))
    code = shop.post("/v1/admin-invites", {}).json()["code"]  # type: ignore[attr-defined]
    console.send(ADMIN, f"/start {code}")
    console.press(ADMIN, "🔁 Recuperação")
    console.press(ADMIN, "🤖 bot")
    before = snapshot(runtime)
    console.press(ADMIN, "🔁 Simular 30 dias")
    assert console.screen(ADMIN).split("\n") == [
        "🔁 O rascunho nos últimos 30 dias de bot (nada enviado):",
        "6 contatos · 8 silêncios · 7 episódios",
        "Passo 1: 6 envios · 1 voltaram antes · 2 voltariam sozinhos · 0 junto do timeout",
        "Passo 2: 4 envios · 2 voltaram antes · 0 voltariam sozinhos · 0 junto do timeout",
        "Fila no pico: 0.179s às 09h (28/s)",
        "Ativos em 1 h após o envio: horário fixo 10% \u00d7 horário habitual 10%",
    ]
    assert snapshot(runtime) == before
