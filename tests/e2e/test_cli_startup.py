"""The real `reengage` command at start: its version, the refusal of a weak secret key, one
line for a configuration or connection error, and a scheduler that waits an outage out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from reengage import __version__
from tests.conftest import TEST_SECRET_KEY
from tests.integration.conftest import wait_until

CLI = [sys.executable, "-m", "reengage.entrypoints.cli"]
PASSWORD = "s3cr3t-pw"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REENGAGE_")}
    return {**env, **{f"REENGAGE_{k.upper()}": v for k, v in settings.items()}}


def _run(args: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=_env(**settings), capture_output=True, text=True, timeout=60
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("reengage: error: ")
    return line


def test_version_is_the_installed_distribution() -> None:
    reengage = Path(sys.executable).parent / "reengage"
    command = [str(reengage)] if reengage.exists() else CLI
    result = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"reengage {__version__}"


@pytest.mark.parametrize(
    ("key", "why"),
    [(None, "the default"), ("too-short-0123456789", "shorter than 32 characters")],
)
@pytest.mark.parametrize("command", ["migrate", "scheduler"])
def test_a_weak_secret_key_is_refused_outside_sqlite(
    command: str, key: str | None, why: str
) -> None:
    settings = {"database_url": f"postgresql://reengage:{PASSWORD}@127.0.0.1:5432/reengage"}
    if key is not None:
        settings["secret_key"] = key
    line = _one_line_error(_run([command], **settings))
    assert f"REENGAGE_SECRET_KEY is {why}" in line
    assert "secrets.token_urlsafe(48)" in line


def test_the_embedded_sqlite_mode_needs_no_key(tmp_path: Path) -> None:
    result = _run(["migrate"], database_url=f"sqlite:///{tmp_path / 'r.db'}")
    assert result.returncode == 0, result.stderr
    assert "latest schema" in result.stdout


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "REENGAGE_DATABASE_URL is not a database URL"),
        (f"postgresql+nodriver://u:{PASSWORD}@db/x", "names the driver 'postgresql+nodriver'"),
        (f"mysql://u:{PASSWORD}@db/x", "names the database 'mysql'"),
    ],
)
def test_a_bad_database_url_is_one_line(url: str, says: str) -> None:
    line = _one_line_error(_run(["migrate"], database_url=url, secret_key=TEST_SECRET_KEY))
    assert says in line


def test_an_unreachable_database_is_one_line() -> None:
    port = _free_port()
    url = f"postgresql://reengage:{PASSWORD}@127.0.0.1:{port}/reengage"
    result = _run(["scheduler"], database_url=url, secret_key=TEST_SECRET_KEY, startup_timeout="1s")
    line = _one_line_error(result)
    assert f"cannot reach the database at 127.0.0.1:{port}/reengage" in line
    assert "REENGAGE_DATABASE_URL" in line


def test_an_unreachable_redis_is_one_line(pg_url: str) -> None:
    port = _free_port()
    result = _run(
        ["scheduler"],
        database_url=pg_url,
        redis_url=f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
        secret_key=TEST_SECRET_KEY,
        startup_timeout="0",
    )
    line = _one_line_error(result)
    assert f"cannot reach Redis at 127.0.0.1:{port}/0 (REENGAGE_REDIS_URL)" in line


def _redis_server(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    wait_until(lambda: _answers(client), timeout=10)
    client.close()
    return server


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _events(log: Path) -> list[str]:
    lines = log.read_text().splitlines()
    return [json.loads(line)["event"] for line in lines if line.startswith("{")]


def _logging(
    args: list[str], log: Path, database_url: str, redis_port: int, **extra: str
) -> subprocess.Popen[bytes]:
    """`reengage <args>` with JSON logs to `log`, on the database and a local Redis port."""
    settings = {
        "database_url": database_url,
        "redis_url": f"redis://127.0.0.1:{redis_port}/0",
        "secret_key": TEST_SECRET_KEY,
        "log_json": "true",
        **extra,
    }
    with log.open("w") as out:
        return subprocess.Popen(
            [*CLI, *args], env=_env(**settings), stdout=out, stderr=subprocess.STDOUT
        )


def test_a_starting_command_waits_for_a_redis_that_is_restarting(
    pg_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    log = tmp_path / "scheduler.log"
    scheduler = _logging(["scheduler"], log, pg_url, port, startup_timeout="30s")
    server = None
    try:
        time.sleep(1.5)
        assert scheduler.poll() is None, log.read_text()
        server = _redis_server(port)
        wait_until(lambda: "scheduler.started" in _events(log), timeout=30)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        try:
            scheduler.wait(timeout=10)
        except subprocess.TimeoutExpired:
            scheduler.kill()
            scheduler.wait()
        if server is not None:
            server.kill()
            server.wait()


def test_the_scheduler_backs_off_while_redis_is_away_and_recovers(
    pg_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    server = _redis_server(port)
    log = tmp_path / "scheduler.log"
    scheduler = _logging(["scheduler"], log, pg_url, port)
    try:
        wait_until(lambda: "scheduler.started" in _events(log), timeout=30)
        server.send_signal(signal.SIGKILL)
        server.wait()
        wait_until(lambda: "scheduler.store_unavailable" in _events(log), timeout=10)
        time.sleep(4)  # retried at 0.1, 0.2, 0.4, ... s: a handful of tries, no line each
        events = _events(log)
        assert events.count("scheduler.store_unavailable") == 1
        assert "scheduler.round_failed" not in events
        assert len(events) <= 4, events
        assert "Traceback" not in log.read_text()
        server = _redis_server(port)
        wait_until(lambda: "scheduler.store_recovered" in _events(log), timeout=20)
        [recovered] = [
            json.loads(line)
            for line in log.read_text().splitlines()
            if "scheduler.store_recovered" in line
        ]
        assert recovered["down_s"] >= 4
    finally:
        scheduler.send_signal(signal.SIGTERM)
        try:
            scheduler.wait(timeout=10)
        except subprocess.TimeoutExpired:
            scheduler.kill()
            scheduler.wait()
        server.kill()
        server.wait()


def _json_lines(log: Path) -> list[dict[str, object]]:
    out = []
    for line in log.read_text().splitlines():
        assert line.startswith("{"), f"not a JSON line: {line}"
        out.append(json.loads(line))
    return out


def test_json_logs_carry_the_exception_and_the_request_id(pg_db: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    import httpx

    from reengage.adapters.db.session import make_engine, make_session_factory
    from reengage.services.tenancy import create_organization

    engine = make_engine(pg_db)
    api_key = create_organization(make_session_factory(engine), "logs", datetime.now(UTC)).api_key
    engine.dispose()
    redis_port, api_port = _free_port(), _free_port()
    server = _redis_server(redis_port)
    log = tmp_path / "serve.log"
    serve = _logging(["serve", "--port", str(api_port), "--access-log"], log, pg_db, redis_port)
    url = f"http://127.0.0.1:{api_port}"
    try:
        wait_until(lambda: _up(f"{url}/healthz"), timeout=30)
        healthy = httpx.get(f"{url}/healthz")
        generated = healthy.headers["x-request-id"]
        assert len(generated) == 32
        server.kill()  # Redis goes away: recording an event cannot succeed
        server.wait()
        answer = httpx.post(
            f"{url}/v1/events",
            headers={"Authorization": f"Bearer {api_key}", "X-Request-ID": "req-42.a:b"},
            json={"id": "e-1", "type": "message.user", "bot_id": 1, "user_id": "u"},
            timeout=30,
        )
        assert answer.status_code >= 500
        assert answer.headers["x-request-id"] == "req-42.a:b"
        hostile = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "bad id\\n{}"})
        assert hostile.headers["x-request-id"] != "bad id\\n{}"
        wait_until(lambda: any(e.get("status") == 200 for e in _json_lines(log)), timeout=10)
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=10)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        server.kill()
        server.wait()
    lines = _json_lines(log)
    [failed] = [e for e in lines if e["event"] == "api.unexpected_error"]
    assert failed["request_id"] == "req-42.a:b"
    assert failed["exc_type"] == "ConnectionError"
    assert "Connection refused" in str(failed["exc_message"])
    assert str(failed["exception"]).startswith("Traceback (most recent call last)")
    access = [e for e in lines if e.get("logger") == "uvicorn.access"]
    [seen] = [e for e in access if e.get("request_id") == generated]
    assert {"status": 200, "path": "/healthz", "method": "GET"}.items() <= seen.items()
    assert any(e.get("request_id") == "req-42.a:b" and e["status"] == 500 for e in access)
    assert any(e.get("logger") == "uvicorn.error" for e in lines)  # "Started server process"


def _up(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
