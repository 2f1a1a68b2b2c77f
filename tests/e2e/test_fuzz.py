"""Hostile input never reaches a 5xx: huge and negative ids, NUL bytes, lone surrogates,
over-long, deeply nested or huge JSON — on every route, the webhooks, with and without a key."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, get_args, get_origin
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from reengage.adapters.db.models import ActivityRecord, InboundMessage
from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.services import tenancy
from tests.e2e.hostile import (
    BIG,
    FUZZ,
    HOSTILE_INTS,
    HOSTILE_TEXTS,
    JSON,
    POLICY,
    TG_SECRET,
    WELCOME,
    World,
    encode,
    generic_headers,
    mutated,
    nested,
    open_world,
    telegram_update,
    whatsapp_payload,
    whatsapp_signature,
)
from tests.e2e.shop import CAMPAIGN


@pytest.fixture
def runtime(
    db_url: str, make_runtime: Callable[..., Runtime], telegram_url: str, whatsapp_url: str
) -> Runtime:
    return make_runtime(db_url, telegram_api_base=telegram_url, whatsapp_api_base=whatsapp_url)


@pytest.fixture
def world(runtime: Runtime) -> Iterator[World]:
    with open_world(runtime) as world:
        yield world


def no_5xx(response: Any) -> None:
    assert response.status_code < 500, (response.request.url, response.text[:300])


# --- every route, every path and query parameter -------------------------------------------

# A valid body for each route that takes one, so that only the hostile parameter is wrong.
BODIES: dict[str, Any] = {
    "POST /v1/events": {"id": "b-1", "type": "message.user", "bot_id": 1, "user_id": "42"},
    "POST /v1/bots": {"name": "b", "channel": "simulator"},
    "POST /webhooks/telegram/{bot_id}": telegram_update(),
    "POST /webhooks/whatsapp/{bot_id}": whatsapp_payload(),
    "POST /webhooks/generic/{bot_id}": {"type": "message.user", "user_id": "42"},
    "PUT /v1/bots/{bot_id}/flows/{key}": WELCOME,
    "PUT /v1/bots/{bot_id}/entry-flow": {"entry_flow": "welcome"},
    "PUT /v1/policies/organization": POLICY,
    "PUT /v1/bots/{bot_id}/policy": POLICY,
    "PUT /v1/bots/{bot_id}/flows/{key}/policy": POLICY,
    "PUT /v1/bots/{bot_id}/flows/{key}/nodes/{node}/policy": POLICY,
    "POST /v1/conversations/{conversation_id}/take": {"agent": "ana"},
    "POST /v1/conversations/{conversation_id}/reply": {"agent": "ana", "text": "oi"},
    "POST /v1/conversations/{conversation_id}/flow": {"flow": "welcome"},
    "PUT /v1/bots/{bot_id}/campaign": CAMPAIGN,
    "PUT /v1/bots/{bot_id}/campaign/enabled": {"enabled": False},
    "POST /v1/bots/{bot_id}/campaign/preview": {},
    "POST /v1/bots/{bot_id}/campaign/replay": {"days": 7},
    "POST /v1/bots/{bot_id}/campaign/steps": {"schedule": "1h"},
    "PUT /v1/bots/{bot_id}/campaign/steps/{step}/schedule": {"schedule": "1h"},
    "POST /v1/bots/{bot_id}/campaign/steps/{step}/move": {"offset": 1},
    "POST /v1/bots/{bot_id}/campaign/exclusions": {"user_id": "7"},
    "PATCH /v1/bots/{bot_id}/contacts/{user_id}": {"name": "Ana"},
    "PUT /v1/voice": {"min_gap": "1h"},
    "PUT /v1/bots/{bot_id}/voice": {"min_gap": "1h"},
    "PUT /v1/bots/{bot_id}/credentials": {"credentials": {"token": "1:x"}},
    "PUT /v1/bots/{bot_id}/token": {"token": "1:x"},
    "PATCH /v1/bots/{bot_id}": {"name": "b"},
    "POST /v1/simulator/{bot_id}/messages": {"chat_id": "42", "text": "oi"},
    "POST /v1/media": None,  # multipart: the file is left out (422)
    "POST /v1/event-subscriptions": {"url": "https://example.com/h", "event_types": ["*"]},
    "PATCH /v1/event-subscriptions/{subscription_id}": {"enabled": True},
}
HOSTILE_INTS_IN_URLS = [str(BIG), str(-BIG - 1), "-1", "a%00b"]
HOSTILE_TEXTS_IN_URLS = ["a%00b", "x" * 300]


def is_int(annotation: Any) -> bool:
    while get_origin(annotation) is not None:  # Annotated[...], Optional[...]
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return annotation is int


def api_routes(world: World) -> Iterator[tuple[str, str, APIRoute]]:
    for context in iter_route_contexts(world.client.app.routes):
        route = context.original_route
        # The console's pages answer a browser (a login page, not a 401): test_console.py
        # sweeps them with hostile values as a logged-in user.
        if isinstance(route, APIRoute) and not str(context.path_format).startswith("/console"):
            for method in sorted(context.methods or ()):
                yield method, str(context.path_format), route


def hostile_calls(world: World) -> Iterator[tuple[str, str, dict[str, str], Any]]:
    """Each route with one path or query parameter hostile, the others real."""
    for method, path, route in api_routes(world):
        real = world.path_values(path)
        names = re.findall(r"{(\w+)}", path)
        body = BODIES.get(f"{method} {path}")
        assert body is not None or not route.dependant.body_params or "media" in path, path
        for param in route.dependant.path_params + route.dependant.query_params:
            hostile = (
                HOSTILE_INTS_IN_URLS
                if is_int(param.field_info.annotation)
                else HOSTILE_TEXTS_IN_URLS
            )
            for bad in hostile:
                values = {n: str(real[n]) for n in names}
                params = {"chat_id": "1"} if "simulator" in path else {}
                if param.name in names:
                    values[param.name] = bad
                else:  # the client encodes it: send the byte itself (by its name on the wire)
                    params[param.alias] = bad.replace("%00", "\x00")
                yield method, path.format(**values), params, body


def test_every_route_answers_hostile_path_and_query_values_with_a_4xx(world: World) -> None:
    calls = list(hostile_calls(world))
    assert len(calls) > 200
    for method, url, params, body in calls:
        content = None if body is None else encode(body)
        headers = {**world.headers, "Content-Type": "application/json"}
        r = world.client.request(method, url, params=params, content=content, headers=headers)
        assert 400 <= r.status_code < 500, (method, url, params, r.status_code, r.text[:300])


# --- property tests over the hostile shapes ------------------------------------------------


@pytest.mark.slow
@FUZZ
@given(event=st.data(), key=st.booleans(), batch=st.booleans())
def test_events_never_answer_5xx(
    world: World, event: st.DataObject, key: bool, batch: bool
) -> None:
    valid = {"id": "e-1", "type": "message.user", "bot_id": world.telegram, "user_id": "42"}
    body = event.draw(mutated({**valid, "text": "oi", "name": "Ana"}))
    body = {"events": [valid, body]} if batch else body
    headers = {**(world.headers if key else {}), "Content-Type": "application/json"}
    no_5xx(world.client.post("/v1/events", content=encode(body), headers=headers))


FREE_FORM = [
    ("PUT", "/v1/bots/{bot}/campaign", CAMPAIGN),
    ("PUT", "/v1/policies/organization", POLICY),
    ("PUT", "/v1/bots/{bot}/policy", POLICY),
    ("PUT", "/v1/bots/{bot}/flows/welcome/nodes/ask/policy", POLICY),
    ("PUT", "/v1/bots/{bot}/flows/welcome", WELCOME),
    ("PUT", "/v1/voice", {"min_gap": "1h", "optout_keywords": ["pare"]}),
    ("PUT", "/v1/bots/{bot}/voice", {"optin_keywords": ["volta"], "optout_confirmation": "ok"}),
    ("POST", "/v1/bots/{bot}/campaign/preview", {"time_zone": "America/Manaus"}),
    ("PATCH", "/v1/bots/{bot}/contacts/42", {"name": "Ana", "time_zone": "America/Manaus"}),
    ("POST", "/v1/conversations/{conversation}/reply", {"agent": "ana", "text": "oi"}),
    ("POST", "/v1/simulator/{simulator}/messages", {"chat_id": "42", "text": "oi"}),
]


@pytest.mark.slow
@FUZZ
@given(which=st.sampled_from(FREE_FORM), data=st.data())
def test_bodies_with_one_hostile_value_never_answer_5xx(
    world: World, which: tuple[str, str, Any], data: st.DataObject
) -> None:
    method, path, valid = which
    url = path.format(
        bot=world.telegram, conversation=world.conversation, simulator=world.simulator
    )
    no_5xx(world.call(method, url, data.draw(mutated(valid))))


HOSTILE_BOT_IDS = st.sampled_from([str(BIG), "-1", "0", "99999", "a%00"]) | HOSTILE_INTS.map(str)


@pytest.mark.slow
@FUZZ
@given(bot=st.none() | HOSTILE_BOT_IDS, secret=st.booleans(), data=st.data())
def test_telegram_updates_never_answer_5xx(
    world: World, bot: str | None, secret: bool, data: st.DataObject
) -> None:
    body = data.draw(mutated(telegram_update()) | JSON)
    headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET if secret else "nope"}
    url = f"/webhooks/telegram/{bot or world.telegram}"
    no_5xx(world.client.post(url, content=encode(body), headers=headers))


@pytest.mark.slow
@FUZZ
@given(bot=st.none() | HOSTILE_BOT_IDS, signed=st.booleans(), data=st.data())
def test_whatsapp_notifications_never_answer_5xx(
    world: World, bot: str | None, signed: bool, data: st.DataObject
) -> None:
    body = encode(data.draw(mutated(whatsapp_payload()) | JSON))
    headers = {"X-Hub-Signature-256": whatsapp_signature(body) if signed else "sha256=00"}
    url = f"/webhooks/whatsapp/{bot or world.whatsapp}"
    no_5xx(world.client.post(url, content=body, headers=headers))


MSG_IDS = st.sampled_from(["m-1", "x" * 300]) | st.text(
    st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=10
)


@pytest.mark.slow
@FUZZ
@given(bot=st.none() | HOSTILE_BOT_IDS, msg_id=MSG_IDS, data=st.data())
def test_generic_webhooks_never_answer_5xx(
    world: World, bot: str | None, msg_id: str, data: st.DataObject
) -> None:
    valid = {"type": "message.user", "user_id": "42", "text": "oi"}
    body = encode(data.draw(mutated(valid) | JSON))
    headers = generic_headers(world.generic_secret, msg_id, body)
    no_5xx(
        world.client.post(
            f"/webhooks/generic/{bot or world.generic}", content=body, headers=headers
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize("size", ["deep", "huge"])
def test_deeply_nested_and_huge_json_never_answer_5xx(world: World, size: str) -> None:
    body = nested(100_000) if size == "deep" else encode({"a": ["x" * 1000] * 2000})
    urls = [
        "/v1/events",
        f"/v1/bots/{world.telegram}/campaign",
        "/v1/policies/organization",
        f"/v1/bots/{world.telegram}/flows/deep",
        "/v1/voice",
    ]
    for url in urls:
        method = "POST" if url == "/v1/events" else "PUT"
        headers = {**world.headers, "Content-Type": "application/json"}
        no_5xx(world.client.request(method, url, content=body, headers=headers))
    for url, headers in [
        (f"/webhooks/telegram/{world.telegram}", {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}),
        (f"/webhooks/whatsapp/{world.whatsapp}", {"X-Hub-Signature-256": whatsapp_signature(body)}),
        (f"/webhooks/generic/{world.generic}", generic_headers(world.generic_secret, "m", body)),
    ]:
        no_5xx(world.client.post(url, content=body, headers=headers))


def test_a_nul_or_a_lone_surrogate_is_named_and_nothing_is_written(world: World) -> None:
    def counts() -> tuple[int, int]:
        with world.runtime.sessions() as s:
            return (
                s.scalar(select(func.count()).select_from(ActivityRecord)) or 0,
                s.scalar(select(func.count()).select_from(InboundMessage)) or 0,
            )

    before = counts()
    good = {"id": "n-1", "type": "message.user", "bot_id": world.telegram, "user_id": "7"}
    for bad, field in [
        ({**good, "user_id": "a\x00b"}, "events[1].user_id"),
        ({**good, "text": "\ud800"}, "events[1].text"),
        ({**good, "bot_id": BIG}, "events[1].bot_id"),
    ]:
        r = world.call("POST", "/v1/events", {"events": [good, bad]})
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "invalid_input"
        assert r.json()["field"] == field
    assert counts() == before
    draft = {
        **CAMPAIGN,
        "steps": [{"schedule": "1h", "blocks": [{"kind": "text", "text": "a\x00"}]}],
    }
    r = world.call("PUT", f"/v1/bots/{world.telegram}/campaign", draft)
    assert r.status_code == 422
    assert r.json()["field"] == "steps[0].blocks[0].text"


@FUZZ
@given(name=HOSTILE_TEXTS)
def test_hostile_contact_paths_answer_4xx(world: World, name: str) -> None:
    user = quote(name, safe="", errors="surrogatepass") if name else "%00"
    r = world.call("GET", f"/v1/bots/{world.telegram}/contacts/{user}")
    assert 400 <= r.status_code < 500, r.text


# --- the safety net ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "status", "error"),
    [
        (RuntimeError("boom"), 500, "internal_error"),
        (OverflowError("Python int too large to convert to SQLite INTEGER"), 422, "invalid_input"),
    ],
)
def test_an_unexpected_error_is_a_short_answer_and_one_log_line(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: Exception,
    status: int,
    error: str,
) -> None:
    def fail(*_: object) -> None:
        raise raised

    monkeypatch.setattr(tenancy, "get_bot", fail)
    capsys.readouterr()
    r = world.call("GET", f"/v1/bots/{world.telegram}")
    assert r.status_code == status
    assert r.json()["error"] == error
    assert set(r.json()) == {"error", "field", "message"}
    captured = capsys.readouterr()
    logged = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(logged) == 1, logged
    assert "Traceback" not in logged[0]


# --- by construction: the schema bounds every integer a request can carry ----------------


def integers(schema: dict[str, Any], components: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "$ref" in schema:
        yield from integers(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if schema.get("type") == "integer":
        yield schema
    children = [*schema.get("anyOf", []), *schema.get("properties", {}).values()]
    children += [s for s in (schema.get("items"), schema.get("additionalProperties")) if s]
    for child in children:
        if isinstance(child, dict):
            yield from integers(child, components)


def test_every_integer_a_request_carries_has_a_maximum() -> None:
    spec = create_app(None).openapi()  # the schema needs no runtime
    components = spec["components"]["schemas"]
    checked = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            schemas = [p["schema"] for p in operation.get("parameters", [])]
            content = operation.get("requestBody", {}).get("content", {})
            schemas += [c["schema"] for c in content.values()]
            for schema in schemas:
                for integer in integers(schema, components):
                    checked += 1
                    assert "maximum" in integer, (method, path, integer)
    assert checked > 50
