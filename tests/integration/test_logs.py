"""Logs of failures: one cheap line with a plain traceback, never local variables, never a
password, a bot token or a bearer token."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import structlog
from sqlalchemy import select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Contact
from reengage.delivery.attempt import deliver
from reengage.delivery.outbox import DeliveryRequest
from reengage.domain.activity import ChannelKind
from reengage.domain.outbound import MessageKind, OutboundMessage
from reengage.domain.timer import ClaimedTimer, Timer
from reengage.entrypoints.logging import RepeatLimit, configure_logging, redact
from reengage.runtime import Runtime
from reengage.testing.time_travel import TimeTravel
from reengage.timers.handler import Outcome
from tests.channel_harness import TG_TOKEN
from tests.factories import make_bot, make_org, message

PASSWORD = "s3cret-Pa55"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("postgresql://app:s3cret@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "POST http://api/bot123456:AAE-x_y/sendMessage",
            "POST http://api/bot123456:***/sendMessage",
        ),
        ("Authorization: Bearer EAAGm0PX4ZCps", "Authorization: Bearer ***"),
        (
            "https://graph/v21.0/me?access_token=EAAG1&x=1",
            "https://graph/v21.0/me?access_token=***&x=1",
        ),
        (
            "nothing to hide here: https://example.com/a",
            "nothing to hide here: https://example.com/a",
        ),
    ],
)
def test_credentials_are_redacted_wherever_they_appear(text: str, kept: str) -> None:
    assert redact(text) == kept


def test_a_failing_send_and_a_failing_timer_log_no_secret_and_no_locals(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = f"http://bot-proxy:{PASSWORD}@127.0.0.1:{closed_port()}"
    runtime = make_runtime(db_url, telegram_api_base=base)
    configure_logging()
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org, credentials={"token": TG_TOKEN})
    runtime.record(org, [message(bot, "777", clock.now())])
    with runtime.sessions() as s:
        contact = s.scalars(select(Contact.id)).one()
    text = OutboundMessage(MessageKind.TEXT, "Oi")
    request = DeliveryRequest(org, bot, contact, "k", "test", text)
    result = deliver(runtime.sessions, runtime, runtime.timers, request, clock.now())
    assert (result.status, result.reason) == ("scheduled", "connect_failed")

    class Exploding:
        purpose, queue = "boom", "timers"

        def handle(self, timer: Timer, now: datetime) -> Outcome:
            settings = runtime.settings.model_copy(  # noqa: F841 - a local a traceback shows
                update={"database_url": f"postgresql://app:{PASSWORD}@db/x"}
            )
            raise RuntimeError(f"cannot reach postgresql://app:{PASSWORD}@db/x")

        def pending(self, *_: object) -> list[tuple[int, Timer]]:
            return []

    runtime.registry["boom"] = Exploding()
    claimed = ClaimedTimer(Timer("boom:1", "boom", clock.now()), "t", 1)
    started = time.monotonic()
    runtime.timer_engine.fire([claimed], clock.now())
    assert time.monotonic() - started < 0.5  # an error costs milliseconds to log
    logs = capsys.readouterr().err
    assert "timer.failed" in logs
    assert "RuntimeError: cannot reach postgresql://app:***@db/x" in logs
    assert "delivery.scheduled" in logs
    assert PASSWORD not in logs
    assert TG_TOKEN.split(":")[1] not in logs
    assert "database_url" not in logs  # no local variables
    assert "settings =" not in logs


def _silences(runtime: Runtime, clock: ManualClock, users: int) -> None:
    """`users` subjects write once and fall silent: one silence decision each."""
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org, channel=ChannelKind.SIMULATOR)
    runtime.record(org, [message(bot, f"u{i}", clock.now()) for i in range(users)])
    TimeTravel(runtime, clock).wait(timedelta(minutes=11))


@pytest.mark.parametrize("users", [5, 40])
def test_at_info_a_run_of_decisions_writes_a_constant_number_of_lines(
    users: int,
    db_url: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime = make_runtime(db_url)
    capsys.readouterr()
    configure_logging(json_output=True, level=logging.INFO, repeats_per_minute=20)
    try:
        _silences(runtime, clock, users)
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == []  # no line per silence, whatever their number


def test_at_debug_every_decision_is_written(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime = make_runtime(db_url)
    capsys.readouterr()
    configure_logging(json_output=True, level=logging.DEBUG, repeats_per_minute=20)
    try:
        _silences(runtime, clock, 40)
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert sum(1 for line in lines if line["event"] == "inactivity.detected") == 40


def test_a_repeated_line_is_written_a_few_times_a_minute_then_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = [0.0]
    limit = RepeatLimit(3, clock=lambda: now[0])
    capsys.readouterr()
    configure_logging(json_output=True)
    try:
        structlog.configure(
            processors=[limit, *structlog.get_config()["processors"]],
        )
        log = structlog.get_logger("test")
        for _ in range(100):
            log.warning("store.unreachable", host="db")
        log.info("other")
        now[0] = 61.0
        log.warning("store.unreachable", host="db")
        log.debug("store.unreachable")  # debug is never limited (nor written at info)
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line.get("suppressed")) for line in lines] == [
        ("store.unreachable", None),
        ("store.unreachable", None),
        ("store.unreachable", None),
        ("other", None),
        ("store.unreachable", 97),
    ]


def test_uvicorns_lines_are_never_dropped_mid_request(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    configure_logging(json_output=True, repeats_per_minute=1)
    for _ in range(3):  # the same line: a drop here would raise inside uvicorn's response
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/healthz", "1.1", 200
        )
    log = structlog.get_logger("test")
    log.warning("store.unreachable")
    log.warning("store.unreachable")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line.get("status", line["event"]) for line in lines] == [
        200,
        200,
        200,
        "store.unreachable",
    ]
