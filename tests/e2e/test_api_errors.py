"""Every error the API answers is in the one error shape, `{"error", "field", "message"}`,
its message in the caller's language: the organization's when the API key is valid, else
the first of `Accept-Language` reengage speaks, else pt-BR. `error` and `field` never
change with the language."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from reengage.adapters.db.models import Organization
from reengage.domain.activity import ChannelKind
from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.services import tenancy
from reengage.services.tenancy import create_organization
from tests.factories import make_bot

LIMIT = 64 * 1024


@dataclass
class Org:
    key: str
    org_id: int
    bot: int
    whatsapp: int


@dataclass
class World:
    runtime: Runtime
    client: TestClient
    orgs: dict[str, Org]  # by language


def _org(runtime: Runtime, language: str) -> Org:
    org = create_organization(runtime.sessions, f"org {language}", runtime.clock.now(), language)
    credentials = {
        "phone_number_id": "1",
        "access_token": "t",
        "app_secret": "s",
        "verify_token": "verify-me",
    }
    whatsapp = make_bot(runtime, org.org_id, channel=ChannelKind.WHATSAPP, credentials=credentials)
    return Org(org.api_key, org.org_id, make_bot(runtime, org.org_id), whatsapp)


@pytest.fixture
def world(db_url: str, make_runtime: Callable[..., Runtime]) -> Iterator[World]:
    runtime = make_runtime(db_url, max_body_bytes=LIMIT)
    orgs = {language: _org(runtime, language) for language in ("pt-BR", "en")}
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        yield World(runtime, client, orgs)


Send = Callable[[TestClient, Org, dict[str, str]], httpx.Response]


@dataclass(frozen=True)
class Case:
    status: int
    error: str
    field: str | None
    pt: str
    en: str
    send: Send


def _boom(*_: object) -> None:
    raise RuntimeError("boom")


CASES = {
    "401 invalid key": Case(
        401,
        "unauthorized",
        None,
        "chave de API inválida ou revogada",
        "invalid or revoked API key",
        lambda c, o, h: c.get("/v1/bots", headers={**h, "Authorization": "Bearer rg_nope"}),
    ),
    "401 no key": Case(
        401,
        "unauthorized",
        None,
        "falta a chave de API (Authorization: Bearer <chave>)",
        "missing API key (Authorization: Bearer <key>)",
        lambda c, o, h: c.get("/v1/bots", headers={"Accept-Language": h["Accept-Language"]}),
    ),
    "403 webhook verification": Case(
        403,
        "forbidden",
        "hub.verify_token",
        "verificação falhou: hub.mode ou hub.verify_token incorreto",
        "verification failed: wrong hub.mode or hub.verify_token",
        lambda c, o, h: c.get(
            f"/webhooks/whatsapp/{o.whatsapp}",
            params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
            headers=h,
        ),
    ),
    "404 unknown route": Case(
        404,
        "not_found",
        None,
        "rota inexistente: GET /v1/nowhere",
        "no such route: GET /v1/nowhere",
        lambda c, o, h: c.get("/v1/nowhere", headers=h),
    ),
    "404 another organization's bot": Case(
        404,
        "not_found",
        "bot_id",
        "bot 999999 não encontrado",
        "bot 999999 not found",
        lambda c, o, h: c.get("/v1/bots/999999", headers=h),
    ),
    "405 wrong method": Case(
        405,
        "method_not_allowed",
        None,
        "DELETE não é permitido em /v1/bots; permitidos: GET, POST",
        "DELETE is not allowed on /v1/bots; allowed: GET, POST",
        lambda c, o, h: c.delete("/v1/bots", headers=h),
    ),
    "413 body too large": Case(
        413,
        "payload_too_large",
        "body",
        f"o corpo da requisição tem mais de {LIMIT} bytes",
        f"the request body is larger than {LIMIT} bytes",
        lambda c, o, h: c.post(
            "/v1/bots",
            content=b'{"name": "' + b"x" * LIMIT + b'"}',
            headers={**h, "Content-Type": "application/json"},
        ),
    ),
    "415 not JSON": Case(
        415,
        "unsupported_media_type",
        "body",
        "o corpo deve ser JSON (Content-Type: application/json), não text/plain",
        "the body must be JSON (Content-Type: application/json), not text/plain",
        lambda c, o, h: c.post(
            "/v1/bots", content=b"name=x", headers={**h, "Content-Type": "text/plain"}
        ),
    ),
    "422 invalid input": Case(
        422,
        "invalid_input",
        "name",
        "Campo obrigatório",
        "Field required",
        lambda c, o, h: c.post("/v1/bots", json={"channel": "telegram"}, headers=h),
    ),
    "422 on the hot path": Case(
        422,
        "invalid_input",
        "events[0].bot_id",
        "O valor deve ser maior ou igual a 1",
        "Input should be greater than or equal to 1",
        lambda c, o, h: c.post(
            "/v1/events",
            json={"events": [{"id": "e", "type": "message.user", "bot_id": 0, "user_id": "u"}]},
            headers=h,
        ),
    ),
    "422 a service refusal": Case(
        422,
        "invalid_input",
        "enabled",
        "publique a campanha antes de ativá-la",
        "publish the campaign before enabling it",
        lambda c, o, h: _enable_unpublished(c, o, h),
    ),
    "422 a refusal with values": Case(
        422,
        "invalid_input",
        "credentials.token",
        "bots telegram precisam de credentials.token",
        "telegram bots need credentials.token",
        lambda c, o, h: c.post("/v1/bots", json={"name": "x", "channel": "telegram"}, headers=h),
    ),
    "422 a domain refusal": Case(
        422,
        "invalid_input",
        "schedule",
        "Agendamento inválido: soon. Use 30m, 2h, 1d12h, amanhã 09:00 ou +2d 18:30",
        "Invalid schedule: soon. Use 30m, 2h, 1d12h, tomorrow 09:00 or +2d 18:30",
        lambda c, o, h: c.post(
            f"/v1/bots/{o.bot}/campaign/steps", json={"schedule": "soon"}, headers=h
        ),
    ),
    "500 unexpected": Case(
        500,
        "internal_error",
        None,
        "erro inesperado",
        "unexpected error",
        lambda c, o, h: c.get(f"/v1/bots/{o.bot}", headers=h),
    ),
}


def _enable_unpublished(client: TestClient, org: Org, headers: dict[str, str]) -> httpx.Response:
    draft = {"steps": [{"schedule": "1h", "blocks": [{"kind": "text", "text": "oi"}]}]}
    assert client.put(f"/v1/bots/{org.bot}/campaign", json=draft, headers=headers).is_success
    return client.put(
        f"/v1/bots/{org.bot}/campaign/enabled", json={"enabled": True}, headers=headers
    )


@pytest.mark.parametrize("language", ["pt-BR", "en"])
@pytest.mark.parametrize("name", list(CASES))
def test_every_error_is_in_the_error_shape_and_the_callers_language(
    world: World, monkeypatch: pytest.MonkeyPatch, name: str, language: str
) -> None:
    case, org = CASES[name], world.orgs[language]
    if case.status == 500:
        monkeypatch.setattr(tenancy, "get_bot", _boom)
    headers = {"Authorization": f"Bearer {org.key}", "Accept-Language": language}
    answer = case.send(world.client, org, headers)
    assert answer.status_code == case.status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert (body["error"], body["field"]) == (case.error, case.field)
    assert body["message"] == (case.en if language == "en" else case.pt)
    assert set(body) <= {"error", "field", "message", "errors"}
    if case.status == 405:
        assert answer.headers["allow"] == "GET, POST"


def _message(world: World, headers: dict[str, str]) -> str:
    answer = world.client.get("/v1/bots/999999", headers=headers)
    assert answer.status_code in (401, 404), answer.text
    return str(answer.json()["message"])


def test_the_organizations_language_wins_over_accept_language(world: World) -> None:
    en, pt = world.orgs["en"], world.orgs["pt-BR"]
    asked_pt = {"Authorization": f"Bearer {en.key}", "Accept-Language": "pt-BR"}
    assert _message(world, asked_pt) == "bot 999999 not found"
    asked_en = {"Authorization": f"Bearer {pt.key}", "Accept-Language": "en-US,en;q=0.9"}
    assert _message(world, asked_en) == "bot 999999 não encontrado"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "falta a chave de API (Authorization: Bearer <chave>)"),
        ({"Accept-Language": "en-GB"}, "missing API key (Authorization: Bearer <key>)"),
        ({"Accept-Language": "fr, en;q=0.3"}, "missing API key (Authorization: Bearer <key>)"),
        ({"Accept-Language": "de"}, "falta a chave de API (Authorization: Bearer <chave>)"),
        ({"X-API-Key": "rg_nope", "Accept-Language": "en"}, "invalid or revoked API key"),
        ({"X-API-Key": "rg_nope"}, "chave de API inválida ou revogada"),
    ],
)
def test_without_a_valid_key_accept_language_decides(
    world: World, headers: dict[str, str], message: str
) -> None:
    assert _message(world, headers) == message


def test_the_key_language_is_read_once_and_kept(world: World) -> None:
    en = world.orgs["en"]
    headers = {"X-API-Key": en.key}
    assert _message(world, headers) == "bot 999999 not found"
    with world.runtime.sessions.begin() as session:
        session.execute(
            update(Organization).where(Organization.id == en.org_id).values(language="pt-BR")
        )
    # Kept in memory (a minute): the next error reads no database for its language.
    assert _message(world, headers) == "bot 999999 not found"
    languages = world.client.app.state.key_languages  # type: ignore[attr-defined]
    assert languages.held(en.key) == (True, "en")
    assert languages.read(en.key) == "pt-BR"  # read anew: the change shows
    assert _message(world, headers) == "bot 999999 não encontrado"


def test_an_error_body_is_json_even_for_a_client_that_accepts_anything(world: World) -> None:
    answer = world.client.get("/nowhere", headers={"Accept": "text/html"})
    assert answer.status_code == 404
    assert json.loads(answer.text)["error"] == "not_found"


def test_a_request_that_succeeds_never_looks_up_a_language(world: World) -> None:
    org = world.orgs["en"]
    event = {"id": "e-1", "type": "message.user", "bot_id": org.bot, "user_id": "u"}
    headers = {"Authorization": f"Bearer {org.key}"}
    for _ in range(2):  # the first checks the key the full way, the second from memory
        assert world.client.post("/v1/events", json=event, headers=headers).is_success
    assert getattr(world.client.app.state, "key_languages", None) is None  # type: ignore[attr-defined]
    assert world.client.get("/v1/bots/999999", headers=headers).status_code == 404
    assert world.client.app.state.key_languages is not None  # type: ignore[attr-defined]
