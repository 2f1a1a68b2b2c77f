"""The console's campaign editor, version history and results over plain HTTP: the same edits
and checks as the API, messages in the operator's language, roll back audit-logged, roles
enforced by the server, other organizations' campaigns unreachable, names escaped."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import AuditEntry, Campaign, CampaignVersion, MediaAsset
from reengage.domain.activity import ChannelKind
from reengage.domain.console_access import Role
from reengage.entrypoints.console.campaign_pages import campaign_router
from reengage.entrypoints.console.campaign_results_pages import results_router
from reengage.runtime import Runtime
from reengage.services.campaigns import campaign_state
from reengage.testing.telegram import FakeTelegram
from reengage.testing.time_travel import TimeTravel
from tests.e2e.console_client import ConsoleBrowser, make_user
from tests.factories import make_bot, make_org

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
# Monday 2026-01-05 12:00 UTC = 09:00 in São Paulo.
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def console_runtime(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    telegram_url: str,
    fake_telegram: FakeTelegram,
    clock: ManualClock,
) -> Runtime:
    clock.set(START)
    return make_runtime(db_url, telegram_api_base=telegram_url)


def base(bot_id: int) -> str:
    return f"/console/bots/{bot_id}/campaign"


def ok(answer: Any) -> Any:
    assert answer.status_code == 303, answer.text[:2000]
    return answer


def build(owner: ConsoleBrowser, bot_id: int, **settings: str) -> None:
    """A two-step campaign with a text block and an uploaded photo, through the console."""
    form = {"time_zone": "America/Sao_Paulo", "threshold": "10m", "ignore_paid": "on"}
    ok(owner.post(f"{base(bot_id)}/settings", form | settings))
    ok(owner.post(f"{base(bot_id)}/steps", {"schedule": "+2h"}))
    ok(owner.post(f"{base(bot_id)}/steps", {"schedule": "amanhã 09:00"}))
    ok(owner.post(f"{base(bot_id)}/steps/0/blocks", {"kind": "text", "text": "Ei, tudo bem?"}))
    photo = owner.client.post(
        f"{base(bot_id)}/steps/0/blocks",
        data={"csrf": owner.csrf(), "kind": "photo", "caption": "10% off"},
        files={"file": ("promo.png", PNG, "image/png")},
        follow_redirects=False,
    )
    ok(photo)
    ok(owner.post(f"{base(bot_id)}/steps/1/blocks", {"kind": "text", "text": "Última chance!"}))


def test_an_owner_builds_previews_publishes_and_enables_a_campaign(
    console_runtime: Runtime, owner: ConsoleBrowser
) -> None:
    assert owner.org is not None
    bot = make_bot(console_runtime, owner.org.org_id, name="Loja")
    build(owner, bot)
    ok(owner.post(f"{base(bot)}/steps/0/blocks/1/effects", {"delay": "5s"}))
    ok(owner.post(f"{base(bot)}/exclusions", {"user_id": "777"}))
    page = owner.get(base(bot))
    assert page.status_code == 200
    assert "Ei, tudo bem?" in page.text
    assert "promo.png" in page.text
    assert "Rascunho · nunca publicada" in page.text
    preview = owner.get(f"{base(bot)}/preview")
    # Quiet since 12:00 UTC: threshold 10 min, +2h → 14:10 UTC (11:10 in São Paulo); the next
    # day at 09:00 local = 12:00 UTC.
    assert "2026-01-05 14:10 UTC" in preview.text, preview.text
    assert "2026-01-06 12:00 UTC" in preview.text
    assert "local: 2026-01-06 09:00" in preview.text
    in_lisbon = owner.get(f"{base(bot)}/preview?time_zone=Europe/Lisbon")
    assert "2026-01-06 09:00 UTC" in in_lisbon.text  # 09:00 in the contact's own zone
    assert "Fuso horário desconhecido" in owner.get(f"{base(bot)}/preview?time_zone=Mars/X").text
    assert owner.post(f"{base(bot)}/enabled", {"enabled": "1"}).status_code == 422  # unpublished
    ok(owner.post(f"{base(bot)}/publish"))
    ok(owner.post(f"{base(bot)}/enabled", {"enabled": "1"}))
    with console_runtime.sessions() as session:
        state = campaign_state(session, owner.org.org_id, bot)
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        [asset] = session.scalars(select(MediaAsset)).all()
    assert state is not None
    assert (state["enabled"], state["version"], state["exclusions"]) == (True, 1, ["777"])
    steps = state["draft"]["steps"]
    assert [s["schedule"] for s in steps] == ["2h", "tomorrow 09:00"]
    assert steps[0]["blocks"][1] == {
        "kind": "photo",
        "asset_id": asset.id,
        "caption": "10% off",
        "delay": "5s",
    }
    assert actions.count("campaign.edit") == 8
    assert actions[-2:] == ["campaign.publish", "campaign.enabled"]
    ok(owner.post(f"{base(bot)}/exclusions/remove", {"user_id": "777"}))
    ok(owner.post(f"{base(bot)}/steps/1/move", {"offset": "up"}))
    ok(owner.post(f"{base(bot)}/steps/1/blocks/1/delete"))
    ok(owner.post(f"{base(bot)}/steps/0/delete"))
    with console_runtime.sessions() as session:
        state = campaign_state(session, owner.org.org_id, bot)
    assert state is not None
    assert state["exclusions"] == []
    assert [len(s["blocks"]) for s in state["draft"]["steps"]] == [1]


def test_a_refused_edit_says_why_in_the_operators_language_and_stores_nothing(
    console_runtime: Runtime, owner: ConsoleBrowser
) -> None:
    assert owner.org is not None
    bot = make_bot(console_runtime, owner.org.org_id)
    ok(owner.post(f"{base(bot)}/steps", {"schedule": "30m"}))
    with console_runtime.sessions() as session:
        before = campaign_state(session, owner.org.org_id, bot)
    cases = [
        ("/steps", {"schedule": "daqui a pouco"}),
        ("/steps/5/blocks", {"kind": "text", "text": "oi"}),
        ("/steps/0/blocks", {"kind": "text", "text": " "}),
        ("/steps/0/blocks", {"kind": "template", "template": "promo", "language": "pt_BR"}),
        ("/steps/0/blocks", {"kind": "photo"}),  # no file
        ("/settings", {"time_zone": "Mars/Olympus", "threshold": "10m"}),
        ("/settings", {"time_zone": "UTC", "threshold": "10s"}),
        ("/exclusions", {"user_id": "not an id!"}),
    ]
    messages = []
    for tail, form in cases:
        answer = owner.post(base(bot) + tail, form)
        assert answer.status_code == 422, (tail, form, answer.status_code)
        found = re.search(r'id="campaign-error">([^<]+)<', answer.text)
        assert found is not None, answer.text[:300]
        messages.append(found.group(1))
    assert messages[1] == "O passo 6 não existe"
    assert messages[3] == "Modelos são só para bots do WhatsApp."
    assert "A inatividade mínima é de 1 minuto" in messages[6]
    owner.get("/console/language?to=en&back=/console/")
    answer = owner.post(f"{base(bot)}/steps/5/blocks", {"kind": "text", "text": "oi"})
    assert "Step 6 does not exist" in answer.text
    with console_runtime.sessions() as session:
        assert campaign_state(session, owner.org.org_id, bot) == before
        assert session.scalar(select(func.count()).select_from(MediaAsset)) == 0


def test_the_version_history_shows_a_diff_and_rolls_back_as_a_new_version(
    console_runtime: Runtime, owner: ConsoleBrowser
) -> None:
    assert owner.org is not None
    bot = make_bot(console_runtime, owner.org.org_id)
    ok(owner.post(f"{base(bot)}/steps", {"schedule": "30m"}))
    ok(owner.post(f"{base(bot)}/steps/0/blocks", {"kind": "text", "text": "Primeira"}))
    ok(owner.post(f"{base(bot)}/publish"))
    ok(owner.post(f"{base(bot)}/steps/0/schedule", {"schedule": "2h"}))
    ok(owner.post(f"{base(bot)}/steps/0/blocks", {"kind": "text", "text": "Segunda"}))
    ok(owner.post(f"{base(bot)}/publish"))
    page = owner.get(f"{base(bot)}/versions/2")
    assert page.status_code == 200
    assert "Mudanças desde a versão 1" in page.text
    assert re.search(r'<span class="ddel">- +&#34;schedule&#34;: &#34;30m&#34;</span>', page.text)
    assert re.search(r'<span class="dadd">\+ +&#34;schedule&#34;: &#34;2h&#34;</span>', page.text)
    assert "Segunda" in page.text
    assert "rollback" not in page.text  # the current version has no roll back
    first = owner.get(f"{base(bot)}/versions/1")
    assert "Primeira versão" in first.text
    assert 'data-action="rollback"' in first.text
    assert owner.get(f"{base(bot)}/versions/2?against=1").status_code == 200
    assert owner.get(f"{base(bot)}/versions/9").status_code == 404
    assert owner.get(f"{base(bot)}/versions/2?against=9").status_code == 404

    back = owner.post(f"{base(bot)}/versions/1/rollback")
    assert back.headers["location"] == f"{base(bot)}/versions/3"
    with console_runtime.sessions() as session:
        versions = {
            v.version: v.definition
            for v in session.scalars(select(CampaignVersion).order_by(CampaignVersion.version))
        }
        [entry] = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "campaign.rollback")
        ).all()
        row = session.scalars(select(Campaign)).one()
    assert versions[3] == versions[1] != versions[2]
    assert row.draft == versions[1]
    assert entry.actor == "user owner@acme.example"
    assert entry.subject == f"bot {bot} campaign, back to version 1"
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["version"], entry.after["version"]) == (2, 3)
    assert entry.before["draft"] == versions[2]
    assert entry.after["draft"] == versions[1]
    assert "Sem mudanças" not in owner.get(f"{base(bot)}/versions/3").text  # vs. version 2


def owner_paths(bot_id: int) -> list[tuple[str, str]]:
    """(method, path) of every campaign and results route, ids filled in."""
    out = []
    for route in (*campaign_router.routes, *results_router.routes):
        path = getattr(route, "path", "")
        for method in sorted(getattr(route, "methods", ()) or ()):
            filled = path.replace("{bot_id}", str(bot_id))
            out.append((method, re.sub(r"{step}|{block}", "0", filled).replace("{version}", "1")))
    return out


def test_every_campaign_page_sends_a_logged_out_browser_to_the_login(
    app_client: TestClient,
) -> None:
    paths = owner_paths(1)
    assert len(paths) == 19
    for method, path in paths:
        answer = app_client.request(method, path, follow_redirects=False)
        assert (answer.status_code, answer.headers.get("location")) == (303, "/console/login")


def test_hostile_path_and_query_values_are_a_4xx_page(
    console_runtime: Runtime, owner: ConsoleBrowser
) -> None:
    assert owner.org is not None
    bot = make_bot(console_runtime, owner.org.org_id)
    ok(owner.post(f"{base(bot)}/steps", {"schedule": "30m"}))
    for method, path in owner_paths(bot):
        for bad in ("-1", str(2**63), "abc", "x" * 300):
            hostile = path.replace(f"/bots/{bot}/", f"/bots/{bad}/")
            answer = owner.post(hostile) if method == "POST" else owner.get(hostile)
            assert 400 <= answer.status_code < 500, (method, hostile)
            assert answer.headers["content-type"].startswith("text/html")
    results = f"{base(bot)}/results"
    for query in ("from=2026-13-01", "to=yesterday", "version=0", "version=x", "from=9" * 3):
        assert owner.get(f"{results}?{query}").status_code in (404, 422), query
    assert owner.get(f"{results}?from=2026-02-01&to=2026-01-01").status_code == 422
    assert owner.get(f"{base(bot)}/preview?time_zone={'x' * 65}").status_code == 404


def test_an_editor_changes_the_campaign_a_viewer_sees_it_read_only_and_is_refused(
    console_runtime: Runtime, owner: ConsoleBrowser, app_client: TestClient
) -> None:
    assert owner.org is not None
    bot = make_bot(console_runtime, owner.org.org_id)
    build(owner, bot)
    ok(owner.post(f"{base(bot)}/publish"))
    make_user(console_runtime, owner.org.org_id, "ed@acme.example", Role.EDITOR)
    make_user(console_runtime, owner.org.org_id, "vera@acme.example", Role.VIEWER)
    owner.client.cookies.clear()
    editor = ConsoleBrowser(app_client)
    assert editor.login("ed@acme.example").status_code == 303
    ok(editor.post(f"{base(bot)}/steps/0/schedule", {"schedule": "3h"}))
    ok(editor.post(f"{base(bot)}/publish"))
    editor.client.cookies.clear()
    viewer = ConsoleBrowser(app_client)
    assert viewer.login("vera@acme.example").status_code == 303
    page = viewer.get(base(bot))
    assert page.status_code == 200
    assert "Ei, tudo bem?" in page.text
    assert 'method="post"' not in page.text.split("</header>")[1]  # no form but the logout
    assert "rollback" not in viewer.get(f"{base(bot)}/versions/1").text
    assert viewer.get(f"{base(bot)}/results").status_code == 200
    with console_runtime.sessions() as session:
        before = campaign_state(session, owner.org.org_id, bot)
        entries = session.scalar(select(func.count()).select_from(AuditEntry))
    refused = 0
    for method, path in owner_paths(bot):
        if method != "POST":
            continue
        answer = viewer.post(path, {"schedule": "1m", "kind": "text", "text": "x", "enabled": "0"})
        assert answer.status_code == 403, path
        assert "Seu papel não permite esta ação." in answer.text
        refused += 1
    upload = viewer.client.post(
        f"{base(bot)}/steps/0/blocks",
        data={"csrf": viewer.csrf(), "kind": "photo"},
        files={"file": ("other.png", PNG + b"1", "image/png")},
        follow_redirects=False,
    )
    assert upload.status_code == 403
    assert refused == 13
    with console_runtime.sessions() as session:
        assert campaign_state(session, owner.org.org_id, bot) == before
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == entries
        assert session.scalar(select(func.count()).select_from(CampaignVersion)) == 2
        assert session.scalar(select(func.count()).select_from(MediaAsset)) == 1


def test_another_organizations_campaign_is_not_reachable(
    console_runtime: Runtime, owner: ConsoleBrowser, app_client: TestClient
) -> None:
    assert owner.org is not None
    other = make_org(console_runtime, "Other")
    make_user(console_runtime, other.org_id, "eve@other.example")
    theirs = make_bot(console_runtime, other.org_id, name="secret bot")
    rival = ConsoleBrowser(TestClient(app_client.app))
    assert rival.login("eve@other.example").status_code == 303
    ok(rival.post(f"{base(theirs)}/steps", {"schedule": "30m"}))
    ok(rival.post(f"{base(theirs)}/steps/0/blocks", {"kind": "text", "text": "secret text"}))
    ok(rival.post(f"{base(theirs)}/publish"))
    with console_runtime.sessions() as session:
        before = campaign_state(session, other.org_id, theirs)
    for method, path in owner_paths(theirs):
        answer = owner.post(path, {"schedule": "1m"}) if method == "POST" else owner.get(path)
        assert answer.status_code == 404, (method, path)
        assert "secret" not in answer.text
    with console_runtime.sessions() as session:
        assert campaign_state(session, other.org_id, theirs) == before


def test_a_bot_name_and_block_text_like_a_script_render_as_text(
    console_runtime: Runtime, owner: ConsoleBrowser
) -> None:
    assert owner.org is not None
    bot = make_bot(console_runtime, owner.org.org_id, name=SCRIPT)
    ok(owner.post(f"{base(bot)}/steps", {"schedule": "30m"}))
    ok(owner.post(f"{base(bot)}/steps/0/blocks", {"kind": "text", "text": SCRIPT}))
    ok(owner.post(f"{base(bot)}/exclusions", {"user_id": "a@b"}))
    ok(owner.post(f"{base(bot)}/publish"))
    for tail in ("", "/preview", "/versions/1", "/results"):
        page = owner.get(base(bot) + tail)
        assert page.status_code == 200, tail
        assert SCRIPT not in page.text, tail
        assert ESCAPED in page.text or "&#34;&lt;script&gt;" in page.text, tail


def test_the_results_page_shows_the_funnel_sends_per_day_and_exports_csv(
    console_runtime: Runtime, owner: ConsoleBrowser, app_client: TestClient, clock: ManualClock
) -> None:
    assert owner.org is not None
    bot = make_bot(console_runtime, owner.org.org_id, channel=ChannelKind.SIMULATOR)
    ok(owner.post(f"{base(bot)}/settings", {"time_zone": "UTC", "threshold": "10m"}))
    ok(owner.post(f"{base(bot)}/steps", {"schedule": "30m"}))
    ok(owner.post(f"{base(bot)}/steps/0/blocks", {"kind": "text", "text": "Oi?"}))
    ok(owner.post(f"{base(bot)}/steps", {"schedule": "2h"}))
    ok(owner.post(f"{base(bot)}/steps/1/blocks", {"kind": "text", "text": "Ainda aí?"}))
    ok(owner.post(f"{base(bot)}/publish"))
    ok(owner.post(f"{base(bot)}/enabled", {"enabled": "1"}))
    headers = {"Authorization": f"Bearer {owner.org.api_key}"}

    def event(n: int, user: str) -> None:
        body = {"id": f"e{n}", "type": "message.user", "bot_id": bot, "user_id": user}
        assert app_client.post("/v1/events", json=body, headers=headers).status_code < 300

    for n, user in enumerate(("ana", "bia", "caio")):
        event(n, user)
    travel = TimeTravel(console_runtime, clock)
    travel.wait(timedelta(minutes=41))  # each received step 1
    event(10, "ana")  # ana answers (and, quiet again, begins a second episode)
    travel.wait(timedelta(hours=2, minutes=1))  # bia and caio receive step 2, ana step 1
    owner.login("owner@acme.example")  # the clock moved: a fresh session
    page = owner.get(f"{base(bot)}/results")
    assert page.status_code == 200
    text = page.text
    assert "4 iniciados · 1 voltaram · 0 converteram" in text
    step_1 = text.split('data-funnel-step="0"')[1].split("</div>")[0]
    assert '<g data-bar="sent" data-value="4">' in step_1
    assert '<g data-bar="returned" data-value="1">' in step_1
    step_2 = text.split('data-funnel-step="1"')[1].split("</div>")[0]
    assert '<g data-bar="sent" data-value="2">' in step_2
    assert '<g data-bar="delivered"' not in step_2  # Telegram-like: no receipts
    assert "Dados insuficientes" in text
    assert '<tr data-day="2026-01-05"><td>2026-01-05</td><td data-sent>6</td>' in text
    owner.get("/console/language?to=en&back=/console/")
    assert "4 started · 1 returned · 0 converted" in owner.get(f"{base(bot)}/results").text
    owner.get("/console/language?to=pt-BR&back=/console/")

    filtered = owner.get(f"{base(bot)}/results?from=2026-01-06&to=2026-01-07")
    assert "Nenhum episódio neste período." in filtered.text
    assert "Nenhum episódio" in owner.get(f"{base(bot)}/results?version=2").text
    assert "4 iniciados" in owner.get(f"{base(bot)}/results?from=2026-01-05&version=1").text
    exported = owner.get(f"{base(bot)}/results/deliveries.csv?from=2026-01-05")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert sorted(r["status"] for r in rows) == ["sent"] * 6
    episodes = owner.get(f"{base(bot)}/results/episodes.csv").text
    assert len(list(csv.DictReader(io.StringIO(episodes)))) == 4
    empty = owner.get(f"{base(bot)}/results/episodes.csv?to=2026-01-04").text
    assert empty.strip().count("\n") == 0  # the header alone


def test_a_whatsapp_campaign_takes_an_approved_template_block(
    console_runtime: Runtime, owner: ConsoleBrowser
) -> None:
    assert owner.org is not None
    bot = make_bot(console_runtime, owner.org.org_id, channel=ChannelKind.WHATSAPP)
    ok(owner.post(f"{base(bot)}/steps", {"schedule": "+1d usual 18:00"}))
    form = {"kind": "template", "template": "promo_1", "language": "pt_BR"}
    ok(owner.post(f"{base(bot)}/steps/0/blocks", form | {"parameters": "{name|cliente}, 10%"}))
    with console_runtime.sessions() as session:
        state = campaign_state(session, owner.org.org_id, bot)
    assert state is not None
    [step] = state["draft"]["steps"]
    assert step["schedule"] == "+1d usual 18:00"
    assert step["blocks"] == [
        {
            "kind": "template",
            "template": {
                "name": "promo_1",
                "language": "pt_BR",
                "parameters": ["{name|cliente}", "10%"],
            },
        }
    ]
    page = owner.get(base(bot))
    assert "promo_1" in page.text
    assert "Nome do modelo aprovado" in page.text
    assert "promo_1" in owner.get(f"{base(bot)}/preview").text
