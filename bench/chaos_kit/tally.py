"""What a run delivered: the fake's records (over HTTP) against the delivery rows (SQL).

- sent: distinct (bot, chat, text) the fake accepted; duplicates: accepted more than once.
- lost_unsent: expected, never accepted, and no delivery row for it is `failed/ambiguous`.
- ambiguous: recovery rows `failed/ambiguous`, split by whether the fake accepted the message.
- kills_during_http: kills that landed while a request of the killed process was open at the
  fake (matched by the process' TCP ports at the moment of the kill, and the request's start
  and end on the fake's wall clock).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from bench.chaos_kit.topology import Kill
from bench.chaos_kit.workload import Workload, step_text

Message = tuple[int, int, str]  # fake bot id, chat id, text
FINAL = ("sent", "failed", "skipped")


@dataclass(frozen=True)
class Row:
    id: int
    dedup_key: str
    status: str
    reason: str | None
    attempts: int
    requested: bool  # `requested_at` set (False when the column does not exist)

    @property
    def state(self) -> str:
        return f"{self.status}/{self.reason}" if self.reason else self.status

    @property
    def ambiguous(self) -> bool:
        return self.status == "failed" and self.reason == "ambiguous"


@dataclass
class Rows:
    """The recovery delivery rows of a run, keyed by the message they carry."""

    by_message: dict[Message, list[Row]] = field(default_factory=dict)
    has_requested_at: bool = False
    running_episodes: int = 0

    def all(self) -> list[Row]:
        return [row for rows in self.by_message.values() for row in rows]

    def states(self) -> Counter[str]:
        return Counter(row.state for row in self.all())

    def settled(self, message: Message) -> bool:
        return any(row.status in FINAL for row in self.by_message.get(message, []))

    def ambiguous(self, message: Message) -> bool:
        return any(row.ambiguous for row in self.by_message.get(message, []))

    def pending(self) -> int:
        return sum(1 for row in self.all() if row.status not in FINAL)

    def progress(self) -> tuple[object, ...]:
        """Changes whenever a row moves (attempts count the hand-backs of pacing too)."""
        states = tuple(sorted(self.states().items()))
        return states, sum(row.attempts for row in self.all()), self.running_episodes


def read_rows(db_url: str, workload: Workload) -> Rows:
    rows = Rows()
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        rows.has_requested_at = bool(
            conn.execute(
                "SELECT 1 FROM information_schema.columns"
                " WHERE table_name = 'delivery' AND column_name = 'requested_at'"
            ).fetchone()
        )
        requested = "d.requested_at IS NOT NULL" if rows.has_requested_at else "false"
        found = conn.execute(
            "SELECT d.id, d.bot_id, c.external_id, d.dedup_key, d.status, d.reason, d.attempts,"
            f" {requested} FROM delivery d JOIN contact c ON c.id = d.contact_id"
            " WHERE d.purpose = 'recovery'"
        ).fetchall()
        running = conn.execute(
            "SELECT count(*) FROM recovery_episode WHERE status = 'running'"
        ).fetchone()
    rows.running_episodes = int(running[0]) if running else 0
    for row_id, bot, user, key, status, reason, attempts, was_requested in found:
        step = int(key.split(":")[2])  # recovery:<episode>:<step>:<block>
        message = (workload.bots[bot], int(user), step_text(step))
        row = Row(row_id, key, status, reason, attempts or 0, bool(was_requested))
        rows.by_message.setdefault(message, []).append(row)
    return rows


def accepted(platform: httpx.Client) -> Counter[Message]:
    response = platform.get("/_control/sent")
    response.raise_for_status()
    return Counter((m["bot_id"], m["chat_id"], m["text"]) for m in response.json())


@dataclass
class Figures:
    expected: int
    sent: int
    unexpected: int  # accepted messages nobody should have received
    duplicates: int
    lost_unsent: int
    ambiguous_delivered: int
    ambiguous_undelivered: int
    ambiguous_requested: int | None  # rows with `requested_at` set, when the column exists
    kills: int
    kills_during_http: int
    requests_cut: int
    rate_limited: int
    faulted_requests: int
    states: Counter[str]
    attempts: Counter[int]  # rows by how many times they were claimed for sending
    lost_states: Counter[str]
    details: list[str]  # the rows behind each duplicate and each lost message (a few)

    @property
    def ambiguous(self) -> int:
        return self.ambiguous_delivered + self.ambiguous_undelivered


def count(
    workload: Workload,
    got: Counter[Message],
    rows: Rows,
    kills: list[Kill],
    requests: list[dict[str, Any]],
    refused: dict[str, list[dict[str, Any]]],
) -> Figures:
    expected = workload.expected()
    lost = [m for m in sorted(expected - set(got)) if not rows.ambiguous(m)]
    doubled = sorted(m for m, n in got.items() if n > 1)
    ambiguous = [(m, row) for m, found in rows.by_message.items() for row in found if row.ambiguous]
    cut = [_in_flight(kill, requests) for kill in kills]
    return Figures(
        expected=len(expected),
        sent=len(set(got) & expected),
        unexpected=len(set(got) - expected),
        duplicates=sum(got[m] - 1 for m in doubled),
        lost_unsent=len(lost),
        ambiguous_delivered=sum(1 for m, _ in ambiguous if m in got),
        ambiguous_undelivered=sum(1 for m, _ in ambiguous if m not in got),
        ambiguous_requested=(
            sum(1 for _, row in ambiguous if row.requested) if rows.has_requested_at else None
        ),
        kills=len(kills),
        kills_during_http=sum(1 for n in cut if n),
        requests_cut=sum(cut),
        rate_limited=len(refused["rate_limited"]),
        faulted_requests=len(refused["faulted"]),
        states=rows.states(),
        attempts=Counter(row.attempts for row in rows.all()),
        lost_states=Counter(_states(rows.by_message.get(m, [])) for m in lost),
        details=[_detail("duplicate", m, got[m], rows) for m in doubled[:5]]
        + [_detail("lost", m, 0, rows) for m in lost[:5]],
    )


def _states(rows: list[Row]) -> str:
    return ",".join(row.state for row in rows) or "no row"


def _detail(kind: str, message: Message, times: int, rows: Rows) -> str:
    bot, chat, text = message
    found = "; ".join(
        f"delivery {r.id} {r.dedup_key} {r.state} attempts={r.attempts}"
        for r in rows.by_message.get(message, [])
    )
    return f"{kind}: bot {bot} chat {chat} {text[:14]!r} accepted {times}x, rows: {found or 'none'}"


def _in_flight(kill: Kill, requests: list[dict[str, Any]]) -> int:
    """Bot API requests of the killed process open at the fake when the kill landed."""
    return sum(
        1
        for r in requests
        if r["client_port"] in kill.ports
        and "/bot" in r["path"]
        and r["started"] <= kill.at
        and (r["ended"] is None or r["ended"] >= kill.at)
    )
