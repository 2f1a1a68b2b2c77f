"""Security of every console URL, found by walking the app's routes (a new page is covered
the day it is added): a logged-out browser reaches none, a form without the session's CSRF
token changes nothing, a viewer changes nothing, another organization's ids answer 404, and
names that look like markup render as text on every page."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from reengage.adapters.db.models import (
    ApiKey,
    AuditEntry,
    Bot,
    Campaign,
    ConsoleInvite,
    ConsoleUser,
    Contact,
    Conversation,
    ConversationEvent,
    Delivery,
    Episode,
    PolicyRow,
)
from reengage.domain import policy as pol
from reengage.domain.console_access import Role
from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.services import policies
from reengage.testing.telegram import FakeTelegram
from tests.e2e.console_client import ConsoleBrowser, make_user
from tests.factories import make_bot, make_org

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PUBLIC = ("/console/login", "/console/language", "/console/invite/")
# The ids a console path may carry, by parameter name; a route whose ids are none of these
# fails `test_another_organizations_ids_answer_404_on_every_console_route` until named here.
ID_PARAMS = ("bot_id", "key_id", "episode_id", "contact_id", "conversation_id")


@dataclass(frozen=True)
class Seeded:
    """One organization's rows, each holding the hostile name where it can."""

    org_id: int
    bot_id: int
    key_id: int
    episode_id: int
    contact_id: int
    conversation_id: int
    delivery_id: int

    def fill(self, path: str) -> str:
        return re.sub(r"{(\w+)}", lambda m: str(getattr(self, m.group(1), 1)), path)


def seed(runtime: Runtime, org_id: int) -> Seeded:
    now = runtime.clock.now()
    bot_id = make_bot(runtime, org_id, name=SCRIPT)
    with runtime.sessions.begin() as session:
        contact = Contact(
            org_id=org_id, bot_id=bot_id, external_id=SCRIPT, name=SCRIPT, created_at=now
        )
        session.add(contact)
        session.flush()
        conv = Conversation(
            org_id=org_id,
            bot_id=bot_id,
            contact_id=contact.id,
            status="handoff",
            handoff_queue=SCRIPT[:64],
            activity_seq=1,
            last_activity_at=now,
            last_message_at=now,
            last_message_from_contact_at=now,
            opened_at=now,
        )
        campaign = Campaign(org_id=org_id, bot_id=bot_id, updated_at=now, version=1)
        session.add_all([conv, campaign])
        session.flush()
        episode = Episode(
            org_id=org_id,
            campaign_id=campaign.id,
            version=1,
            bot_id=bot_id,
            contact_id=contact.id,
            conversation_id=conv.id,
            seq=1,
            status="running",
            next_step=0,
            next_due_at=now + timedelta(hours=1),
            started_at=now,
        )
        session.add(episode)
        session.flush()
        delivery = Delivery(
            org_id=org_id,
            bot_id=bot_id,
            contact_id=contact.id,
            episode_id=episode.id,
            dedup_key=f"seed-{org_id}",
            purpose="recovery",
            status="failed",
            reason=SCRIPT,
            error=SCRIPT,
            scheduled_at=now,
            finished_at=now,
        )
        event = ConversationEvent(
            org_id=org_id,
            conversation_id=conv.id,
            kind=SCRIPT,
            reason=SCRIPT,
            dedup_key=f"seed-{org_id}",
            detail={},
            created_at=now,
        )
        session.add_all([delivery, event])
        scope = policies.Scope(pol.Level.BOT, bot_id)
        policies.put_policy(session, org_id, scope, {"timeout": "30m", "final_text": SCRIPT}, now)
        session.flush()
        key_id = session.scalar(select(ApiKey.id).where(ApiKey.org_id == org_id))
        assert key_id is not None
        return Seeded(org_id, bot_id, key_id, episode.id, contact.id, conv.id, delivery.id)


@dataclass
class World:
    runtime: Runtime
    app: FastAPI
    client: TestClient
    mine: Seeded
    theirs: Seeded
    owner: ConsoleBrowser

    def as_user(self, email: str, role: Role) -> ConsoleBrowser:
        make_user(self.runtime, self.mine.org_id, email, role)
        self.client.cookies.clear()
        browser = ConsoleBrowser(self.client)
        assert browser.login(email).status_code == 303
        return browser


@pytest.fixture
def world(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    telegram_url: str,
    fake_telegram: FakeTelegram,
) -> Iterator[World]:
    runtime = make_runtime(db_url, telegram_api_base=telegram_url)
    mine, theirs = make_org(runtime, "Acme"), make_org(runtime, "Other")
    app = create_app(runtime)
    with TestClient(app) as client:
        make_user(runtime, mine.org_id, "owner@acme.example")
        make_user(runtime, theirs.org_id, "owner@other.example")
        owner = ConsoleBrowser(client, mine)
        assert owner.login("owner@acme.example").status_code == 303
        yield World(
            runtime,
            app,
            client,
            seed(runtime, mine.org_id),
            seed(runtime, theirs.org_id),
            owner,
        )


def console_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every console route behind a login."""
    out = []
    for context in iter_route_contexts(app.routes):
        path = str(context.path_format)
        if not isinstance(context.original_route, APIRoute) or not path.startswith("/console/"):
            continue
        if path.startswith(PUBLIC):
            continue
        out += [(method, path) for method in sorted(context.methods or ())]
    return out


def state(runtime: Runtime, fake: FakeTelegram) -> dict[str, Any]:
    """What any change would show: rows per table, statuses, the platform's calls."""
    models = (Bot, ApiKey, ConsoleInvite, ConsoleUser, Delivery, PolicyRow, AuditEntry, Episode)
    with runtime.sessions() as session:
        counts = {m.__name__: session.scalar(select(func.count()).select_from(m)) for m in models}
        episodes = sorted(session.execute(select(Episode.id, Episode.status)).tuples())
        convs = sorted(
            session.execute(
                select(Conversation.id, Conversation.status, Conversation.agent)
            ).tuples()
        )
        revoked = sorted(session.scalars(select(ApiKey.id).where(ApiKey.revoked_at.is_not(None))))
    timers = runtime.timers.count()  # out of the session: SQLite has one writer at a time
    return {
        **counts,
        "episodes": episodes,
        "conversations": convs,
        "revoked": revoked,
        "timers": timers,
        "platform_calls": len(fake.calls),
    }


FORMS: dict[str, dict[str, str]] = {
    "/console/bots": {"name": "x", "token": "123:abc"},
    "/console/bots/whatsapp": {
        "name": "x",
        "phone_number_id": "12345",
        "access_token": "token-123",
        "app_secret": "secret-123",
    },
    "/console/bots/{bot_id}/token": {"token": "123:abc"},
    "/console/bots/{bot_id}/delete": {"confirm": SCRIPT},  # the seeded bots' name
    "/console/keys": {"name": "k"},
    "/console/people/invite": {"role": "owner"},
    "/console/handoff/{conversation_id}/reply": {"text": "oi"},
    "/console/send-to-me": {"bot_id": "{bot_id}", "user_id": SCRIPT},
    "/console/timeouts/edit": {"timeout": "5m"},
}


def form_for(template: str, seeded: Seeded) -> dict[str, str]:
    return {k: seeded.fill(v) for k, v in FORMS.get(template, {"any": "value"}).items()}


def test_there_are_console_routes_to_check(world: World) -> None:
    routes = console_routes(world.app)
    paths = {path for _, path in routes}
    for expected in (
        "/console/episodes",
        "/console/contacts/{contact_id}",
        "/console/episodes/{episode_id}/stop",
        "/console/timeouts/edit",
        "/console/conversations/{conversation_id}/timeout",
        "/console/handoff/{conversation_id}/take",
        "/console/bots/whatsapp",
        "/console/keys/{key_id}/revoke",
        "/console/bots/{bot_id}/token",
        "/console/bots/{bot_id}/delete",
    ):
        assert expected in paths
    assert len(routes) >= 25


def test_a_logged_out_browser_reaches_no_console_page(world: World) -> None:
    world.client.cookies.clear()
    for method, template in console_routes(world.app):
        path = world.mine.fill(template)
        answer = world.client.request(method, path, follow_redirects=False)
        assert (answer.status_code, answer.headers.get("location")) == (
            303,
            "/console/login",
        ), (method, path)


def test_a_form_without_the_right_csrf_token_is_refused_everywhere(
    world: World, fake_telegram: FakeTelegram
) -> None:
    before = state(world.runtime, fake_telegram)
    posts = [p for m, p in console_routes(world.app) if m == "POST"]
    assert len(posts) >= 12
    for template in posts:
        path, form = world.mine.fill(template), form_for(template, world.mine)
        for token in (None, "x" * 43, ""):
            data = form if token is None else {**form, "csrf": token}
            answer = world.owner.post_raw(path, data)
            assert answer.status_code == 403, (path, token, answer.status_code)
            assert "O formulário expirou" in answer.text
    assert state(world.runtime, fake_telegram) == before
    assert world.owner.get("/console/").status_code == 200  # still logged in


def test_a_viewer_changes_nothing_through_any_form(
    world: World, fake_telegram: FakeTelegram
) -> None:
    viewer = world.as_user("vera@acme.example", Role.VIEWER)
    before = state(world.runtime, fake_telegram)
    for method, template in console_routes(world.app):
        if method != "POST" or template == "/console/logout":
            continue
        path = world.mine.fill(template)
        answer = viewer.post(path, form_for(template, world.mine))
        assert answer.status_code == 403, (path, answer.status_code)
        assert "Seu papel não permite esta ação." in answer.text
    for path in ("/console/episodes", "/console/handoff", "/console/timeouts/edit"):
        page = viewer.get(f"{path}?bot={world.mine.bot_id}" if "edit" in path else path)
        assert page.status_code == 200
        assert 'method="post"' not in page.text.split("</header>")[1], path
    assert state(world.runtime, fake_telegram) == before


def test_another_organizations_ids_answer_404_on_every_console_route(
    world: World, fake_telegram: FakeTelegram
) -> None:
    before = state(world.runtime, fake_telegram)
    theirs = world.theirs
    checked = 0
    for method, template in console_routes(world.app):
        names = re.findall(r"{(\w+)}", template)
        if not names:
            continue
        assert set(names) & set(ID_PARAMS), f"name the ids of {template} in ID_PARAMS"
        path = theirs.fill(template)
        if method == "POST":
            answer = world.owner.post(path, form_for(template, theirs))
        else:
            answer = world.owner.get(path)
        assert answer.status_code == 404, (method, path, answer.status_code)
        assert ESCAPED not in answer.text
        checked += 1
    assert checked >= 10
    # The levels and filters named in the query string or the form.
    bot = theirs.bot_id
    for path in (
        f"/console/timeouts/edit?bot={bot}",
        f"/console/contacts?bot={bot}&user=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ):
        assert world.owner.get(path).status_code == 404, path
    for path in (f"/console/timeouts/edit?bot={bot}", f"/console/timeouts/delete?bot={bot}"):
        assert world.owner.post(path, {"timeout": "5m"}).status_code == 404, path
    sent = world.owner.post("/console/send-to-me", {"bot_id": str(bot), "user_id": SCRIPT})
    assert sent.status_code == 404
    for path in (
        "/console/episodes",
        "/console/deliveries",
        "/console/handoff",
        "/console/timeouts",
    ):
        page = world.owner.get(f"{path}?bot={bot}" if "timeouts" not in path else path).text
        assert f'data-episode="{theirs.episode_id}"' not in page
        assert f'data-delivery="{theirs.delivery_id}"' not in page
        assert f'data-conversation="{theirs.conversation_id}"' not in page
        assert f"bot:{bot}" not in page
    assert state(world.runtime, fake_telegram) == before


def test_markup_in_names_renders_as_text_on_every_page(world: World) -> None:
    mine = world.mine
    pages = [world.mine.fill(p) for m, p in console_routes(world.app) if m == "GET"]
    pages += [
        f"/console/episodes?bot={mine.bot_id}&reason=%3Cscript%3E",
        f"/console/deliveries?bot={mine.bot_id}",
        f"/console/timeouts/edit?bot={mine.bot_id}",
    ]
    shown = 0
    for path in pages:
        answer = world.owner.get(path)
        assert answer.status_code < 500, path
        if not answer.headers["content-type"].startswith("text/html"):
            continue  # a CSV export carries the values as they are: no browser renders it
        assert SCRIPT not in answer.text, path
        assert "<script>" not in answer.text.replace(
            '<script src="/console/static/htmx-2.0.11.min.js" defer></script>', ""
        ), path
        shown += ESCAPED in answer.text
    assert shown >= 10  # the name was there, escaped
    for path in ("/console/handoff", f"/console/contacts/{mine.contact_id}"):
        assert ESCAPED in world.owner.get(path).text, path


HOSTILE = ["0", "-1", str(2**63), "9" * 30, "abc", "%00", "x" * 300, "1.5"]


def test_hostile_values_in_any_console_path_or_filter_are_a_4xx_page(world: World) -> None:
    calls = 0
    for method, template in console_routes(world.app):
        if "{" not in template:
            continue
        for bad in HOSTILE:
            path = re.sub(r"{\w+}", bad, template)
            answer = world.owner.post(path) if method == "POST" else world.owner.get(path)
            assert 400 <= answer.status_code < 500, (method, path, answer.status_code)
            assert answer.headers["content-type"].startswith("text/html"), path
            calls += 1
    for query in ("bot", "since", "until", "status"):
        for bad in HOSTILE:
            answer = world.owner.get(f"/console/deliveries?{query}={bad}")
            assert answer.status_code == 422, (query, bad)
    for bad in HOSTILE:
        answer = world.owner.get(f"/console/timeouts/edit?bot={bad}&flow={bad}")
        assert 400 <= answer.status_code < 500, bad
    assert calls >= 80
