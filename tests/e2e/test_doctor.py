"""`reengage doctor`, the real command, against PostgreSQL, Redis and the platform fakes:
one line per check, each bot's credentials checked by its platform, exit code 1 when one
check fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from reengage.adapters.db.migrate import alembic_config
from reengage.runtime import Runtime
from reengage.services.tenancy import rotate_token
from reengage.testing.telegram import FakeTelegram
from reengage.testing.whatsapp import FakeWhatsApp
from tests.channel_harness import WA_PHONE, WA_TOKEN
from tests.conftest import REDIS_URL, TEST_SECRET_KEY, free_port
from tests.factories import ChannelKind, make_bot, make_org

CLI = [sys.executable, "-m", "reengage.entrypoints.cli", "doctor"]
REVOKED = "999001:doctor-revoked"
WA = {"phone_number_id": WA_PHONE, "access_token": WA_TOKEN, "app_secret": "s", "verify_token": "v"}


def head() -> str:
    return str(ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head())


def doctor(**settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REENGAGE_")}
    env |= {f"REENGAGE_{k.upper()}": v for k, v in settings.items()}
    return subprocess.run(CLI, env=env, capture_output=True, text=True, timeout=120)


def test_doctor_checks_everything_and_names_what_fails(
    pg_db: str,
    make_runtime: object,
    fake_telegram: FakeTelegram,
    fake_whatsapp: FakeWhatsApp,
    telegram_url: str,
    whatsapp_url: str,
) -> None:
    runtime: Runtime = make_runtime(pg_db)  # type: ignore[operator]
    org = make_org(runtime).org_id
    good = make_bot(runtime, org, name="Loja", credentials={"token": "123:good"})
    bad = make_bot(runtime, org, name="Antigo", credentials={"token": REVOKED})
    number = make_bot(runtime, org, name="Zap", channel=ChannelKind.WHATSAPP, credentials=WA)
    sim = make_bot(runtime, org, name="Sim", channel=ChannelKind.SIMULATOR)
    fake_telegram.revoke_token(REVOKED)
    settings = {
        "database_url": pg_db,
        "redis_url": REDIS_URL,
        "broker_url": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        "secret_key": TEST_SECRET_KEY,
        "telegram_api_base": telegram_url,
        "whatsapp_api_base": whatsapp_url,
    }
    result = doctor(**settings)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok    configuration",
        "ok    database",
        "ok    redis",
        "FAIL  broker",
        f"ok    bot {good} (telegram, Loja)",
        f"FAIL  bot {bad} (telegram, Antigo)",
        f"ok    bot {number} (whatsapp, Zap)",
        f"ok    bot {sim} (simulator, Sim)",
    ]
    assert lines[1].endswith(f"reachable, schema {head()} (latest)")
    assert "cannot reach Redis" in lines[3]
    assert "REENGAGE_BROKER_URL" in lines[3]
    assert "token accepted by Telegram (@" in lines[4]
    assert "Telegram refused the token" in lines[5]
    assert "access token accepted by WhatsApp" in lines[6]
    assert [c.method for c in fake_telegram.calls] == ["getMe", "getMe"]
    assert result.stderr.strip() == "2 check(s) failed"

    # Everything fine, exit code 0: the old bot's token replaced, the broker reachable.
    rotate_token(runtime.sessions, runtime.credentials, org, bad, "999001:new")
    fixed = doctor(**(settings | {"broker_url": REDIS_URL}))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "FAIL" not in fixed.stdout
    assert len(fixed.stdout.strip().splitlines()) == 8


def test_a_database_behind_the_release_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"  # never migrated
    result = doctor(database_url=url)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("ok    configuration: sqlite, embedded")
    assert lines[1].startswith("FAIL  database:")
    assert f"is at schema none, this release needs {head()}: run `reengage migrate`" in lines[1]
    assert lines[2:4] == [
        "skip  redis: REENGAGE_REDIS_URL unset: embedded mode",
        "skip  broker: REENGAGE_BROKER_URL unset: work runs in-process",
    ]
    assert lines[4] == "skip  bots: not checked: the database check failed"
