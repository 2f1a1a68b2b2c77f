"""The production topology from an installed wheel, outside the source tree: the wheel is
built, installed into a fresh virtual environment, and its `reengage` command migrates an
empty PostgreSQL database and runs `serve`, `scheduler` and `worker` on Redis and a Redis
broker (what `Dockerfile` and `compose.yaml` run). A Telegram bot is registered through the
API, a user writes, goes quiet, and the reminder timer fires: the fake Telegram receives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from reengage.testing.server import serve
from reengage.testing.telegram import FakeTelegram
from tests.conftest import PG_ADMIN_URL, REDIS_URL, TEST_SECRET_KEY, free_port
from tests.integration.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
# uv as scripts/install runs it (installed for the system python3, not inside .venv).
UV = ["python3", "-m", "uv"]
TOKEN = "424242:WHEEL-token"
CHAT = 7770001
FLOW = {
    "nodes": [
        {"id": "hello", "type": "message", "text": "Olá! Sou o bot instalado.", "next": "plan"},
        {"id": "plan", "type": "question", "text": "Qual plano? (mensal/anual)", "var": "plan"},
    ]
}
REMINDER = "Ainda está aí? (lembrete do pacote instalado)"
POLICY = {"timeout": "30m", "action": "close", "reminders": [{"after": "2m", "text": REMINDER}]}


def _uv_available() -> bool:
    return subprocess.run([*UV, "--version"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the wheel built from this checkout (and the locked
    dependencies, from uv's cache or PyPI); its `bin` directory."""
    if not _uv_available():  # scripts/install installs it; `bash scripts/test` always has it
        pytest.fail("uv is not installed: run `bash scripts/install`")
    work = tmp_path_factory.mktemp("wheel")

    def uv(*args: str) -> None:
        subprocess.run([*UV, *args], check=True, capture_output=True, cwd=work)

    uv("build", "--wheel", "--out-dir", str(work / "dist"), str(ROOT))
    [wheel] = (work / "dist").glob("reengage-*.whl")
    requirements = work / "requirements.txt"
    uv("export", "--project", str(ROOT), "--frozen", "--no-dev", "--no-hashes",
       "--no-emit-project", "--quiet", "-o", str(requirements))  # fmt: skip
    venv = work / "venv"
    uv("venv", "--quiet", "--python", "python3", str(venv))
    python = str(venv / "bin" / "python")
    uv("pip", "install", "--quiet", "--python", python, "-r", str(requirements), str(wheel))
    return venv / "bin"


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A PostgreSQL database with no schema at all: `reengage migrate` builds it."""
    name = f"reengage_wheel_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Topology:
    """`reengage` commands of the installed wheel, run from a directory outside the source
    tree, with no path to it; each one's output in a log file, killed after the test."""

    def __init__(self, bin_dir: Path, cwd: Path, settings: dict[str, str]) -> None:
        self.bin = bin_dir
        self.cwd = cwd
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("REENGAGE_", "PYTHON", "VIRTUAL_ENV"))
        }
        self.env = {**inherited, **{f"REENGAGE_{k.upper()}": v for k, v in settings.items()}}
        self.env["PATH"] = f"{bin_dir}{os.pathsep}/usr/bin:/bin"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.closing: list[httpx.Client] = []

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "reengage"), *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self, name: str, *args: str) -> None:
        with (self.cwd / f"{name}.log").open("wb") as log:
            self.procs[name] = subprocess.Popen(
                [str(self.bin / "reengage"), *args],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited:\n{self.log(name)}"

    def log(self, name: str) -> str:
        return (self.cwd / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for client in self.closing:
            client.close()
        for proc in self.procs.values():
            if proc.poll() is None:  # the command itself: it stops its own children
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_the_installed_wheel_runs_the_production_topology(
    installed: Path,
    empty_database: str,
    redis_client: object,
    broker: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    outside = tmp_path_factory.mktemp("operator")
    assert ROOT not in outside.parents
    fake = FakeTelegram()
    api_port = free_port()
    with serve(fake.app) as telegram:
        topology = Topology(
            installed,
            outside,
            {
                "database_url": empty_database,
                "redis_url": REDIS_URL,
                "broker_url": broker,
                "secret_key": TEST_SECRET_KEY,
                "telegram_api_base": telegram.url,
                # A minute of the product's time per second, the same instant for everyone.
                "clock_speed": "60",
                "clock_epoch": datetime.now(UTC).isoformat(),
            },
        )
        try:
            located = subprocess.run(
                [str(installed / "python"), "-c", "import reengage; print(reengage.__file__)"],
                cwd=outside,
                env=topology.env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert str(installed.parent) in located
            assert str(ROOT) not in located

            migrated = topology.run("migrate")
            assert migrated.returncode == 0, migrated.stderr
            assert "latest schema" in migrated.stdout
            org = topology.run("orgs", "create", "Pacote")
            assert org.returncode == 0, org.stderr
            api_key = org.stdout.split("api key ")[1].strip()

            topology.start("serve", "serve", "--port", str(api_port))
            topology.start("scheduler", "scheduler")
            topology.start("worker", "worker", "--concurrency", "2")
            url = f"http://127.0.0.1:{api_port}"
            wait_until(lambda: topology.alive() or _up(f"{url}/healthz"), timeout=60)

            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"})
            topology.closing.append(api)
            bot = api.post(
                "/v1/bots",
                json={"name": "Loja", "channel": "telegram", "credentials": {"token": TOKEN}},
            )
            assert bot.status_code == 201, bot.text
            bot_id = bot.json()["id"]
            for path, body in [
                (f"/v1/bots/{bot_id}/flows/sales", FLOW),
                (f"/v1/bots/{bot_id}/entry-flow", {"entry_flow": "sales"}),
                (f"/v1/bots/{bot_id}/policy", POLICY),
            ]:
                answer = api.put(path, json=body)
                assert answer.status_code == 200, answer.text
            event = {
                "id": "w-1",
                "type": "message.user",
                "bot_id": bot_id,
                "user_id": str(CHAT),
                "text": "oi",
            }
            assert api.post("/v1/events", json=event).status_code == 200

            def texts() -> list[str]:
                topology.alive()
                return [m.text or "" for m in fake.sent_messages(CHAT)]

            wait_until(lambda: REMINDER in texts(), timeout=60)
            assert texts()[0] == "Olá! Sou o bot instalado."
            assert "Qual plano? (mensal/anual)" in texts()
        finally:
            topology.stop()
    for name in ("serve", "scheduler", "worker"):
        assert "Traceback" not in topology.log(name), topology.log(name)
