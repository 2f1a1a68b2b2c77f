"""Managing what runs from the real `reengage` command: organizations and their keys, bots
with their credentials, a token rotated, the secret key rotated; a mistake is one line and
a non-zero exit, and changes nothing. Each command is a process of its own (seconds each on
a loaded machine): these run on PostgreSQL, the production database; the services under them
are tested on both databases (tests/e2e/test_manage_api.py, test_rotation_on_both_databases)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from reengage.adapters.crypto import Credentials
from reengage.adapters.db.models import ApiKey, Bot, EventSubscription
from reengage.adapters.db.session import make_engine, make_session_factory
from reengage.domain.activity import ChannelKind
from tests.conftest import TEST_SECRET_KEY

CLI = [sys.executable, "-m", "reengage.entrypoints.cli"]
NEW_KEY = "new-secret-key-0123456789abcdefghijklmnopqrstuv"
THIRD_KEY = "third-secret-key-0123456789abcdefghijklmnopqrst"


def reengage(
    db_url: str, *args: str, key: str = TEST_SECRET_KEY, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REENGAGE_")}
    env |= {"REENGAGE_DATABASE_URL": db_url, "REENGAGE_SECRET_KEY": key}
    return subprocess.run(
        [*CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("reengage: error: ")
    return line


def stored(db_url: str, keys: list[str]) -> dict[int, dict[str, object]]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            bots = session.scalars(select(Bot).order_by(Bot.id)).all()
            return {b.id: Credentials(keys).of(b.id, b.credentials) for b in bots}
    finally:
        engine.dispose()


pytestmark = pytest.mark.timeout(300)


def test_bots_from_the_command_line(pg_db: str) -> None:
    db_url = pg_db
    org_id = ok(reengage(db_url, "orgs", "create", "Loja")).split()[1]
    bot = ok(reengage(db_url, "bots", "create", org_id, "Vendas", "--channel", "telegram",
                      "--token", "1:old", "--threshold", "15m"))  # fmt: skip
    bot_id = bot.split()[1]
    line = refused(reengage(db_url, "bots", "create", org_id, "X", "--channel", "telegram"))
    assert line.endswith("--token: telegram bots need credentials.token")
    line = refused(reengage(db_url, "bots", "create", org_id, "X", "--channel", "whatsapp",
                            "--token", "t", "--credential", "phone_number_id=1"))  # fmt: skip
    assert "--credential: whatsapp bots need credentials.app_secret" in line
    line = refused(reengage(db_url, "bots", "create", org_id, "X", "--threshold", "soon"))
    assert "--threshold" in line
    assert stored(db_url, [TEST_SECRET_KEY]) == {int(bot_id): {"token": "1:old"}}

    ok(reengage(db_url, "bots", "update", org_id, bot_id, "--name", "Vendas 2"))
    listed = ok(reengage(db_url, "bots", "list", org_id)).strip()
    assert listed == f"{bot_id}\ttelegram\tVendas 2\t900\tcredentials\tenabled"
    line = refused(reengage(db_url, "bots", "update", org_id, "999", "--name", "x"))
    assert line == "reengage: error: bot 999 not found"
    refused(reengage(db_url, "bots", "update", org_id, bot_id))  # nothing to change
    ok(reengage(db_url, "bots", "rotate-token", org_id, bot_id, "-", stdin="1:new\n"))
    assert stored(db_url, [TEST_SECRET_KEY]) == {int(bot_id): {"token": "1:new"}}

    assert (
        ok(reengage(db_url, "bots", "disable", org_id, bot_id)).strip() == f"bot {bot_id} disabled"
    )
    assert ok(reengage(db_url, "bots", "list", org_id)).strip().endswith("\tdisabled")
    ok(reengage(db_url, "bots", "enable", org_id, bot_id))
    assert ok(reengage(db_url, "bots", "list", org_id)).strip().endswith("\tenabled")
    assert ok(reengage(db_url, "bots", "delete", org_id, bot_id)).strip() == f"bot {bot_id} deleted"
    assert ok(reengage(db_url, "bots", "list", org_id)).strip() == ""
    assert stored(db_url, [TEST_SECRET_KEY]) == {int(bot_id): {}}  # credentials wiped
    for command in ("disable", "enable", "delete"):
        line = refused(reengage(db_url, "bots", command, org_id, bot_id))
        assert line == f"reengage: error: bot {bot_id} not found"


def test_organizations_and_their_keys_from_the_command_line(pg_db: str) -> None:
    db_url = pg_db
    created = ok(reengage(db_url, "orgs", "create", "Loja"))
    org_id = created.split()[1]
    assert ok(reengage(db_url, "orgs", "list")).strip() == f"{org_id}\tpt-BR\tLoja"
    prefix = created.split("api key rg_")[1].split("_")[0]
    keys = ok(reengage(db_url, "orgs", "keys", org_id, "--prefix", prefix)).strip()
    assert keys.startswith(f"{prefix}\tdefault\t")
    assert keys.endswith("\tactive")
    ok(reengage(db_url, "orgs", "revoke-key", org_id, prefix))
    assert not ok(reengage(db_url, "orgs", "keys", org_id)).strip().endswith("active")
    line = refused(reengage(db_url, "orgs", "revoke-key", org_id, "00000000"))
    assert line == "reengage: error: API key 00000000 not found"
    engine = make_engine(db_url)
    with make_session_factory(engine)() as session:
        assert session.scalar(select(ApiKey.revoked_at).where(ApiKey.prefix == prefix))
    engine.dispose()


def test_the_secret_key_is_rotated(pg_db: str) -> None:
    db_url = pg_db
    org_id = ok(reengage(db_url, "orgs", "create", "Loja")).split()[1]
    seed_bots(db_url, int(org_id), TEST_SECRET_KEY)
    both = f"{NEW_KEY},{TEST_SECRET_KEY}"
    assert "re-encrypted: 3; already on the newest key: 0" in ok(
        reengage(db_url, "keys", "rotate", key=both)
    )
    assert "re-encrypted: 0; already on the newest key: 3" in ok(
        reengage(db_url, "keys", "rotate", key=both)
    )
    tokens = {i: c.get("token") for i, c in stored(db_url, [NEW_KEY]).items()}
    assert sorted(t for t in tokens.values() if t) == ["0:t", "1:t", "2:t"]
    # The old key is gone: a credential it alone decrypts is named, nothing else changes.
    line = refused(reengage(db_url, "keys", "rotate", key=THIRD_KEY), code=2)
    assert "cannot be decrypted with any secret key" in line
    assert "REENGAGE_SECRET_KEY" in line


def seed_bots(db_url: str, org_id: int, key: str) -> None:
    """Three Telegram bots with tokens and a simulator bot without credentials."""
    from reengage.services.tenancy import create_bot

    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    for n in range(3):
        create_bot(sessions, Credentials(key), org_id, name=f"b{n}",
                   channel=ChannelKind.TELEGRAM, now=datetime.now(UTC),
                   credentials={"token": f"{n}:t"})  # fmt: skip
    create_bot(sessions, Credentials(key), org_id, name="sim", channel=ChannelKind.SIMULATOR,
               now=datetime.now(UTC))  # fmt: skip
    engine.dispose()


def test_rotation_on_both_databases(db_url: str) -> None:
    from reengage.services import event_subscriptions as subscriptions
    from reengage.services.event_subscriptions import SubscriptionChange
    from reengage.services.secret_keys import rotate_credentials
    from reengage.services.tenancy import create_organization

    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    org_id = create_organization(sessions, "Loja", datetime.now(UTC)).org_id
    seed_bots(db_url, org_id, TEST_SECRET_KEY)
    # An events-out subscription whose secret was rotated: its current and previous secrets.
    old = Credentials(TEST_SECRET_KEY)
    with sessions.begin() as session:
        change = SubscriptionChange(url="https://example.com/hook", event_types=["*"])
        sub, previous = subscriptions.create(session, old, org_id, change, datetime.now(UTC))
        _, secret = subscriptions.rotate_secret(session, old, org_id, sub.id, datetime.now(UTC))
    both = Credentials([NEW_KEY, TEST_SECRET_KEY])
    first = rotate_credentials(sessions, both)
    assert (first.rotated, first.current) == (5, 0)
    second = rotate_credentials(sessions, both)
    assert (second.rotated, second.current) == (0, 5)
    with pytest.raises(ValueError, match=r"bot \d+: credentials cannot be decrypted"):
        rotate_credentials(sessions, Credentials(THIRD_KEY))
    newest = Credentials(NEW_KEY)
    with sessions() as session:
        row = session.get_one(EventSubscription, sub.id)
        assert newest.decrypt(row.secret) == {"secret": secret}
        assert row.previous_secret is not None
        assert newest.decrypt(row.previous_secret) == {"secret": previous}
    engine.dispose()
    tokens = sorted(str(c["token"]) for c in stored(db_url, [NEW_KEY]).values() if c)
    assert tokens == ["0:t", "1:t", "2:t"]


@pytest.mark.parametrize("keys", [f"{NEW_KEY},short", f"{NEW_KEY},change-me-in-production"])
def test_every_key_given_must_be_strong_outside_sqlite(pg_db: str, keys: str) -> None:
    line = refused(reengage(pg_db, "keys", "rotate", key=keys), code=2)
    assert "key 2 of REENGAGE_SECRET_KEY is" in line
