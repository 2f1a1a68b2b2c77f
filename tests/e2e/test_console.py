"""The web console over plain HTTP: logging in, roles enforced by the server, CSRF, escaping,
tenancy, the language switch, and the API keys and audit log it manages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import (
    ApiKey,
    AuditEntry,
    Bot,
    Campaign,
    ConsoleInvite,
    ConsoleUser,
    Contact,
    Delivery,
    Episode,
)
from reengage.domain.activity import ChannelKind
from reengage.domain.console_access import Role
from reengage.entrypoints.api.app import create_app
from reengage.entrypoints.console.admin_pages import admin_router
from reengage.entrypoints.console.auth_pages import auth_router
from reengage.entrypoints.console.pages import pages_router
from reengage.entrypoints.demo import FLOW
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram
from tests.conftest import REDIS_URL
from tests.e2e.console_client import PASSWORD, ConsoleBrowser, csrf_of, make_user
from tests.factories import make_bot, make_org

TOKEN = "123456:console-test-token"
SCRIPT = "<script>alert(1)</script>"
SIMULATOR = ChannelKind.SIMULATOR


@pytest.fixture
def console_runtime(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    telegram_url: str,
    fake_telegram: FakeTelegram,  # reset for each test (a token revoked before works again)
) -> Runtime:
    return make_runtime(db_url, telegram_api_base=telegram_url)


def count(runtime: Runtime, model: type[object]) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def console_paths(with_ids: bool = True) -> list[tuple[str, str]]:
    """(method, path) of every console route that needs a login, ids filled with 1."""
    out = []
    for route in (*auth_router.routes, *pages_router.routes, *admin_router.routes):
        path = getattr(route, "path", "")
        public = ("/console/login", "/console/language", "/console/invite", "/console/static")
        if not path.startswith("/console/") or path.startswith(public):
            continue
        for method in sorted(getattr(route, "methods", ()) or ()):
            filled = path.replace("{bot_id}", "1").replace("{key_id}", "1")
            out.append((method, filled if with_ids else path))
    return out


def test_every_console_page_sends_a_logged_out_browser_to_the_login(
    app_client: TestClient,
) -> None:
    paths = console_paths()
    assert len(paths) >= 10
    for method, path in paths:
        answer = app_client.request(method, path, follow_redirects=False)
        assert (answer.status_code, answer.headers.get("location")) == (303, "/console/login"), (
            method,
            path,
        )


HOSTILE = ["0", "-1", str(2**63), "9" * 30, "abc", "%00", "x" * 300, "%F0%9F", "1.5"]


def test_every_console_route_answers_hostile_path_values_with_a_4xx_page(
    owner: ConsoleBrowser,
) -> None:
    calls = 0
    for method, template in console_paths(with_ids=False):
        if "{" not in template:
            continue
        for bad in HOSTILE:
            path = re.sub(r"{\w+}", bad, template)
            answer = owner.post(path) if method == "POST" else owner.get(path)
            assert 400 <= answer.status_code < 500, (method, path, answer.status_code)
            assert answer.headers["content-type"].startswith("text/html"), (method, path)
            calls += 1
    for bad in HOSTILE:  # an invitation's token, logged out
        assert owner.get(f"/console/invite/{bad}").status_code in (404, 422)
    assert calls >= 30


def test_a_wrong_password_is_refused_and_a_right_one_opens_a_session(
    console_runtime: Runtime, app_client: TestClient
) -> None:
    org = make_org(console_runtime)
    make_user(console_runtime, org.org_id, "ana@acme.example")
    browser = ConsoleBrowser(app_client)
    wrong = browser.login("ana@acme.example", "not the password")
    assert wrong.status_code == 401
    assert "E-mail ou senha incorretos." in wrong.text
    assert browser.login("nobody@acme.example").status_code == 401
    right = browser.login("ANA@acme.example ")
    assert right.status_code == 303
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/console" in cookie
    assert browser.get("/console/").status_code == 200


def test_the_session_cookie_is_secure_when_the_public_url_is_https(
    db_url: str, make_runtime: Callable[..., Runtime]
) -> None:
    runtime = make_runtime(db_url, public_url="https://console.acme.example")
    org = make_org(runtime)
    make_user(runtime, org.org_id, "ana@acme.example")
    with TestClient(create_app(runtime)) as client:  # plain http, as behind a TLS proxy
        page = client.get("/console/login")
        assert "Secure" in page.headers["set-cookie"]  # the form's token too
        token = csrf_of(page)
        client.cookies.clear()  # an http client keeps no Secure cookie: hand it over
        answer = client.post(
            "/console/login",
            data={"email": "ana@acme.example", "password": PASSWORD, "csrf": token},
            headers={"Cookie": f"rg_form={token}"},
            follow_redirects=False,
        )
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]


def test_a_session_ends_at_logout_and_when_it_expires(
    console_runtime: Runtime, owner: ConsoleBrowser, clock: ManualClock
) -> None:
    assert owner.get("/console/").status_code == 200
    clock.advance(console_runtime.settings.console_session_ttl - timedelta(seconds=1))
    assert owner.get("/console/").status_code == 200
    clock.advance(timedelta(seconds=1))
    assert owner.get("/console/").headers["location"] == "/console/login"
    assert owner.login("owner@acme.example").status_code == 303
    cookie = owner.client.cookies.get("rg_session")
    assert owner.post("/console/logout").status_code == 303
    owner.client.cookies.set("rg_session", cookie or "", path="/console")
    assert owner.get("/console/").headers["location"] == "/console/login"


def test_a_form_without_the_right_csrf_token_changes_nothing(
    console_runtime: Runtime, owner: ConsoleBrowser
) -> None:
    form = {"name": "Loja", "token": TOKEN}
    missing = owner.post_raw("/console/bots", form)
    wrong = owner.post_raw("/console/bots", {**form, "csrf": "x" * 43})
    assert (missing.status_code, wrong.status_code) == (403, 403)
    assert "O formulário expirou" in wrong.text
    assert owner.post_raw("/console/keys", {"name": "k"}).status_code == 403
    assert owner.post_raw("/console/logout", {}).status_code == 403
    assert count(console_runtime, Bot) == 0
    assert count(console_runtime, ApiKey) == 1  # the organization's first one
    assert owner.get("/console/").status_code == 200  # still logged in
    # The login form carries its own double-submit token: a forged login is refused too.
    forged = owner.client.post(
        "/console/login",
        data={"email": "owner@acme.example", "password": PASSWORD, "csrf": "forged"},
        follow_redirects=False,
    )
    assert forged.status_code == 403


def test_an_owner_adds_a_telegram_bot_checked_with_get_me(
    console_runtime: Runtime, owner: ConsoleBrowser, fake_telegram: FakeTelegram
) -> None:
    answer = owner.post("/console/bots", {"name": "Loja", "token": TOKEN})
    assert answer.status_code == 303
    assert [c.token for c in fake_telegram.calls_to("getMe")] == [TOKEN]
    page = owner.get(answer.headers["location"])
    assert "Bot Loja" in page.text
    status = owner.get(answer.headers["location"] + "/status")
    assert 'data-status="ok"' in status.text
    overview = owner.get("/console/")
    assert "Loja" in overview.text
    assert 'data-figure="active_now">0<' in overview.text
    audit = owner.get("/console/audit").text
    assert "user owner@acme.example" in audit
    assert "bot.create" in audit
    assert TOKEN not in audit  # credentials never reach the log


def test_a_token_telegram_refuses_adds_no_bot(
    console_runtime: Runtime, owner: ConsoleBrowser, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.revoke_token(TOKEN)
    refused = owner.post("/console/bots", {"name": "Loja", "token": TOKEN})
    assert refused.status_code == 422
    assert "O Telegram recusou este token: Unauthorized" in refused.text
    malformed = owner.post("/console/bots", {"name": "Loja", "token": "no colon here"})
    assert malformed.status_code == 422
    assert owner.post("/console/bots", {"name": "", "token": TOKEN}).status_code == 422
    assert count(console_runtime, Bot) == 0


def test_a_value_no_column_may_hold_is_a_422_page_and_changes_nothing(
    console_runtime: Runtime, owner: ConsoleBrowser
) -> None:
    for name in ("a\x00b", "x" * 10_001):
        refused = owner.post("/console/bots", {"name": name, "token": TOKEN})
        assert refused.status_code == 422
        assert "Valor inválido: name." in refused.text
    login_page = owner.get("/console/login")
    nul_login = owner.client.post(
        "/console/login",
        data={"email": "owner@acme.example\x00", "password": PASSWORD, "csrf": csrf_of(login_page)},
        follow_redirects=False,
    )
    assert nul_login.status_code == 422
    assert count(console_runtime, Bot) == 0


def test_a_bot_named_like_a_script_renders_as_text_everywhere(
    console_runtime: Runtime, owner: ConsoleBrowser
) -> None:
    answer = owner.post("/console/bots", {"name": SCRIPT, "token": TOKEN})
    location = answer.headers["location"]
    for path in ("/console/", "/console/bots", location, "/console/audit"):
        page = owner.get(path)
        assert page.status_code == 200
        assert SCRIPT not in page.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path
        assert "script-src" not in page.headers["content-security-policy"]  # 'self' only
        assert page.headers["content-security-policy"].startswith("default-src 'self'")


def test_another_organizations_ids_are_not_reachable(
    console_runtime: Runtime, owner: ConsoleBrowser, app_client: TestClient
) -> None:
    other = make_org(console_runtime, "Other")
    bot_id = make_bot(console_runtime, other.org_id, name="secret bot")
    with console_runtime.sessions() as session:
        key_id = session.scalar(select(ApiKey.id).where(ApiKey.org_id == other.org_id))
    assert key_id is not None
    for path in (f"/console/bots/{bot_id}", f"/console/bots/{bot_id}/status"):
        page = owner.get(path)
        assert page.status_code == 404, path
        assert "secret bot" not in page.text
    assert owner.post(f"/console/bots/{bot_id}/webhook").status_code == 404
    assert owner.post(f"/console/keys/{key_id}/revoke").status_code == 404
    for path in ("/console/", "/console/bots", "/console/keys", "/console/audit"):
        assert "secret bot" not in owner.get(path).text
    headers = {"Authorization": f"Bearer {other.api_key}"}
    assert app_client.get("/v1/bots", headers=headers).status_code == 200  # not revoked
    for hostile in ("0", "-1", "9" * 30, "abc"):
        assert owner.get(f"/console/bots/{hostile}").status_code == 404


def test_a_viewer_can_read_but_every_form_is_refused(
    console_runtime: Runtime, owner: ConsoleBrowser, app_client: TestClient
) -> None:
    answer = owner.post("/console/bots", {"name": "Loja", "token": TOKEN})
    bot_path = answer.headers["location"]
    link = owner.post("/console/people/invite", {"role": "viewer"})
    assert link.status_code == 200
    token = link.text.split("/console/invite/")[1].split("<")[0]
    owner.client.cookies.clear()
    viewer = ConsoleBrowser(app_client)
    page = viewer.get(f"/console/invite/{token}")
    assert "leitor" in page.text
    joined = viewer.client.post(
        f"/console/invite/{token}",
        data={"email": "vera@acme.example", "password": PASSWORD, "csrf": csrf_of(page)},
        follow_redirects=False,
    )
    assert joined.status_code == 303
    assert viewer.get("/console/").status_code == 200
    with console_runtime.sessions() as session:
        log = [(e.actor, e.action) for e in session.scalars(select(AuditEntry))]
    assert ("user owner@acme.example", "user.invite") in log
    assert ("user vera@acme.example", "user.join") in log
    assert viewer.get(bot_path).status_code == 200
    assert 'action="/console/bots"' not in viewer.get("/console/bots").text  # no form shown
    before = {m: count(console_runtime, m) for m in (Bot, ApiKey, ConsoleInvite, ConsoleUser)}
    with console_runtime.sessions() as session:
        key_id = session.scalar(select(ApiKey.id))
    assert key_id is not None
    posts = {
        "/console/bots": {"name": "X", "token": TOKEN},
        f"{bot_path}/webhook": {},
        "/console/keys": {"name": "mine"},
        f"/console/keys/{key_id}/revoke": {},
        "/console/people/invite": {"role": "owner"},
    }
    for path, form in posts.items():
        refused = viewer.post(path, form)
        assert refused.status_code == 403, path
        assert "Seu papel não permite esta ação." in refused.text
    for path in ("/console/keys", "/console/people"):
        assert viewer.get(path).status_code == 403
    after = {m: count(console_runtime, m) for m in (Bot, ApiKey, ConsoleInvite, ConsoleUser)}
    assert after == before
    # The invitation was used once: it opens no second account.
    again = viewer.get(f"/console/invite/{token}")
    assert again.status_code == 404


def test_an_owner_creates_lists_and_revokes_api_keys(
    console_runtime: Runtime, owner: ConsoleBrowser, app_client: TestClient
) -> None:
    created = owner.post("/console/keys", {"name": "crm"})
    plaintext = created.text.split('<code id="new-key">')[1].split("<")[0]
    prefix = plaintext.split("_")[1]
    listing = owner.get("/console/keys").text
    assert f"rg_{prefix}" in listing
    assert plaintext not in listing  # shown once, listed by prefix
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert app_client.get("/v1/bots", headers=headers).status_code == 200
    with console_runtime.sessions() as session:
        key_id = session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix))
    assert owner.post(f"/console/keys/{key_id}/revoke").status_code == 303
    assert app_client.get("/v1/bots", headers=headers).status_code == 401
    with console_runtime.sessions() as session:
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["api_key.create", "api_key.revoke"]


def test_the_api_writes_its_changes_to_the_audit_log(
    console_runtime: Runtime, owner: ConsoleBrowser, app_client: TestClient
) -> None:
    assert owner.org is not None
    prefix = owner.org.api_key.split("_")[1]
    headers = {"Authorization": f"Bearer {owner.org.api_key}"}
    made = app_client.post(
        "/v1/bots", json={"name": "api bot", "channel": "simulator"}, headers=headers
    )
    assert made.status_code == 201
    audit = owner.get("/console/audit").text
    assert f"api key rg_{prefix}" in audit
    assert "bot.create" in audit
    assert "api bot" in audit


def test_campaign_and_policy_changes_through_the_api_are_logged_with_before_and_after(
    console_runtime: Runtime, owner: ConsoleBrowser, app_client: TestClient
) -> None:
    assert owner.org is not None
    headers = {"Authorization": f"Bearer {owner.org.api_key}"}
    bot_id = make_bot(console_runtime, owner.org.org_id, channel=SIMULATOR)
    base = f"/v1/bots/{bot_id}"
    policy = {"enabled": True, "timeout": "30m", "action": "close"}
    assert app_client.put(f"{base}/policy", json=policy, headers=headers).is_success
    changed = {**policy, "timeout": "45m"}
    assert app_client.put(f"{base}/policy", json=changed, headers=headers).is_success
    draft = {
        "threshold": "10m",
        "steps": [{"schedule": "30m", "blocks": [{"kind": "text", "text": "Oi!"}]}],
    }
    assert app_client.put(f"{base}/campaign", json=draft, headers=headers).is_success
    assert app_client.post(
        f"{base}/campaign/steps", json={"schedule": "2h"}, headers=headers
    ).is_success
    assert app_client.post(f"{base}/campaign/publish", headers=headers).is_success
    on = app_client.put(f"{base}/campaign/enabled", json={"enabled": True}, headers=headers)
    assert on.is_success
    refused = app_client.put(f"{base}/policy", json={"timeout": "forever"}, headers=headers)
    assert refused.status_code == 422
    with console_runtime.sessions() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [e.action for e in entries] == [
        "policy.put",
        "policy.put",
        "campaign.draft",
        "campaign.edit",
        "campaign.publish",
        "campaign.enabled",
    ]  # the refused change wrote nothing
    first, second = entries[0], entries[1]
    assert first.before is None
    assert (second.before or {})["timeout"] == "30m"
    assert (second.after or {})["timeout"] == "45m"
    draft_entry, edit = entries[2], entries[3]
    assert draft_entry.before is None
    assert len((edit.before or {})["draft"]["steps"]) == 1
    assert len((edit.after or {})["draft"]["steps"]) == 2
    assert ((entries[4].before or {})["version"], (entries[4].after or {})["version"]) == (0, 1)
    assert (entries[5].before or {})["enabled"] is False
    assert (entries[5].after or {})["enabled"] is True
    assert all(e.actor == f"api key rg_{owner.org.api_key.split('_')[1]}" for e in entries)
    assert "campaign.publish" in owner.get("/console/audit").text


def test_flow_and_voice_changes_through_the_api_are_logged(
    console_runtime: Runtime, owner: ConsoleBrowser, app_client: TestClient
) -> None:
    assert owner.org is not None
    headers = {"Authorization": f"Bearer {owner.org.api_key}"}
    bot_id = make_bot(console_runtime, owner.org.org_id, channel=SIMULATOR)
    flow_url = f"/v1/bots/{bot_id}/flows/atendimento"
    assert app_client.put(flow_url, json=FLOW, headers=headers).is_success
    entry = {"entry_flow": "atendimento"}
    assert app_client.put(f"/v1/bots/{bot_id}/entry-flow", json=entry, headers=headers).is_success
    rules = {"min_gap": "1h", "optout_keywords": ["pare"]}
    assert app_client.put("/v1/voice", json=rules, headers=headers).is_success
    bad = app_client.put("/v1/voice", json={"min_gap": "never"}, headers=headers)
    assert bad.status_code == 422
    with console_runtime.sessions() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [(e.action, e.subject) for e in entries] == [
        ("flow.put", f"bot {bot_id} flow atendimento"),
        ("bot.entry_flow", f"bot {bot_id}"),
        ("voice.put", "organization"),
    ]
    assert entries[0].before is None
    assert (entries[0].after or {})["start"] == "hello"
    assert (entries[1].before, entries[1].after) == ({"entry_flow": None}, entry)
    assert (entries[2].after or {})["optout_keywords"] == ["pare"]


def test_the_language_switch(owner: ConsoleBrowser) -> None:
    assert "Visão geral" in owner.get("/console/").text
    switched = owner.get("/console/language?to=en&back=/console/bots")
    assert switched.headers["location"] == "/console/bots"
    page = owner.get("/console/bots")
    assert "Add a Telegram bot" in page.text
    assert '<html lang="en">' in page.text
    refused = owner.post_raw("/console/bots", {"name": "x", "token": TOKEN})
    assert "The form expired" in refused.text
    assert owner.get("/console/language?to=xx&back=//evil.example").headers["location"] == (
        "/console/"
    )


def test_the_overview_counts_per_bot(
    console_runtime: Runtime, owner: ConsoleBrowser, app_client: TestClient, clock: ManualClock
) -> None:
    assert owner.org is not None
    key = owner.org.api_key
    bot_id = make_bot(console_runtime, owner.org.org_id, name="counted", channel=SIMULATOR)
    events = [
        {"id": f"e-{user}", "type": "message.user", "bot_id": bot_id, "user_id": user}
        for user in ("ana", "bruno")
    ]
    headers = {"Authorization": f"Bearer {key}"}
    assert app_client.post("/v1/events", json={"events": events}, headers=headers).is_success
    page = owner.get("/console/").text
    card = page.split(f'data-bot="{bot_id}"')[1]
    assert 'data-figure="active_now">2<' in card
    assert "nenhum atrasado" in card
    clock.advance(timedelta(minutes=11))  # past the bot's 10 minutes: nobody active, timers late
    card = owner.get("/console/").text.split(f'data-bot="{bot_id}"')[1]
    assert 'data-figure="active_now">0<' in card
    assert "(há 60 s)" in card


def test_the_overview_counts_sends_problems_episodes_and_late_work_per_bot(
    console_runtime: Runtime, owner: ConsoleBrowser, clock: ManualClock
) -> None:
    assert owner.org is not None
    now = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    clock.set(now)
    owner.login("owner@acme.example")  # the clock moved: a fresh session
    org_id = owner.org.org_id
    shop = make_bot(console_runtime, org_id, name="shop", channel=SIMULATOR)
    quiet = make_bot(console_runtime, org_id, name="quiet", channel=SIMULATOR)
    other = make_org(console_runtime, "Other")
    elsewhere = make_bot(console_runtime, other.org_id, name="elsewhere", channel=SIMULATOR)
    today, yesterday = now - timedelta(hours=1), now - timedelta(days=1)
    with console_runtime.sessions.begin() as session:
        contacts = {}
        for org, bot in ((org_id, shop), (other.org_id, elsewhere)):
            contact = Contact(org_id=org, bot_id=bot, external_id="ana", created_at=yesterday)
            session.add(contact)
            session.flush()
            contacts[bot] = contact.id
        rows = [
            (shop, "sent", None, today),
            (shop, "sent", None, today),
            (shop, "sent", None, yesterday),
            (shop, "failed", "blocked", today),
            (shop, "skipped", "window_closed", today),
            (shop, "skipped", "window_closed", today),
            (shop, "skipped", "opted_out", yesterday),
            (shop, "scheduled", None, now - timedelta(minutes=5)),
            (elsewhere, "sent", None, today),
            (elsewhere, "failed", "blocked", today),
        ]
        for n, (bot, status, reason, at) in enumerate(rows):
            session.add(
                Delivery(
                    org_id=org_id if bot == shop else other.org_id,
                    bot_id=bot,
                    contact_id=contacts[bot],
                    dedup_key=f"d-{n}",
                    purpose="recovery",
                    status=status,
                    reason=reason,
                    scheduled_at=at,
                    sent_at=at if status == "sent" else None,
                    finished_at=at if status != "scheduled" else None,
                )
            )
        campaign = Campaign(org_id=org_id, bot_id=shop, updated_at=yesterday)
        session.add(campaign)
        session.flush()
        for seq, (status, due) in enumerate(
            (
                ("running", now - timedelta(minutes=9)),
                ("running", now + timedelta(hours=1)),
                ("completed", None),
            )
        ):
            session.add(
                Episode(
                    org_id=org_id,
                    campaign_id=campaign.id,
                    version=1,
                    bot_id=shop,
                    contact_id=contacts[shop],
                    seq=seq,
                    status=status,
                    next_due_at=due,
                    started_at=yesterday,
                )
            )
    page = owner.get("/console/").text
    assert "elsewhere" not in page
    card = page.split(f'data-bot="{shop}"')[1].split("</section>")[0]
    assert 'data-figure="sent_today">2<' in card
    assert 'data-figure="episodes_running">2<' in card
    assert "blocked: <strong>1</strong>" in card
    assert "window_closed: <strong>2</strong>" in card
    assert "opted_out" not in card  # yesterday's
    assert "(há 9 min)" in card  # the episode's step, later than the scheduled delivery
    empty = page.split(f'data-bot="{quiet}"')[1].split("</section>")[0]
    assert 'data-figure="sent_today">0<' in empty
    assert "nenhum atrasado" in empty


def test_the_api_docs_load_their_assets_from_the_package(app_client: TestClient) -> None:
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = app_client.get(page).text
        assert f"/static/docs/{asset}" in html
        assert "cdn." not in html
        assert "fonts.googleapis" not in html
        served = app_client.get(f"/static/docs/{asset}")
        assert served.status_code == 200
        assert len(served.content) > 100_000


def test_a_revoked_key_is_refused_at_once_by_the_api_key_cache(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    redis_client: redis.Redis,
    telegram_url: str,
) -> None:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL, telegram_api_base=telegram_url)
    org = make_org(runtime)
    bot_id = make_bot(runtime, org.org_id, channel=SIMULATOR)
    make_user(runtime, org.org_id, "own@acme.example", Role.OWNER)
    headers = {"Authorization": f"Bearer {org.api_key}"}
    event = {"id": "e-1", "type": "message.user", "bot_id": bot_id, "user_id": "ana"}
    with TestClient(create_app(runtime)) as client:
        assert client.post("/v1/events", json=event, headers=headers).is_success  # now cached
        assert runtime.tenants.cached_org_of_key(org.api_key) == org.org_id
        browser = ConsoleBrowser(client)
        browser.login("own@acme.example")
        with runtime.sessions() as session:
            key_id = session.scalar(select(ApiKey.id).where(ApiKey.org_id == org.org_id))
        assert browser.post(f"/console/keys/{key_id}/revoke").status_code == 303
        again = {**event, "id": "e-2"}
        assert client.post("/v1/events", json=again, headers=headers).status_code == 401
