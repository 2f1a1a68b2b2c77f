"""The OpenAPI document an integrator reads: every request body has an example the API
accepts, every secured operation names both API-key schemes, and every operation documents
its errors with the one error schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema_rs import Draft202012Validator

from reengage.runtime import Runtime
from tests.e2e.hostile import World, open_world

ERROR_REF = "#/components/schemas/ErrorOut"
PUBLIC = ("/webhooks/", "/healthz", "/readyz", "/metrics", "/v1/event-types")
# Bodies the domain checks (no model): the API must take each example as it is.
FREE_FORM = ("/policy", "/policies/", "/campaign", "/voice", "/flows/{key}")


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def example_of(spec: dict[str, Any], media: dict[str, Any]) -> Any:
    if "example" in media:
        return media["example"]
    ref = media["schema"].get("$ref", "")
    examples = (
        spec["components"]["schemas"][ref.rsplit("/", 1)[-1]].get("examples") if ref else None
    )
    return examples[0] if examples else None


def bodies(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for method, path, operation in operations(spec):
        for kind, media in operation.get("requestBody", {}).get("content", {}).items():
            yield method, path, kind, media


def test_every_request_body_has_a_valid_example(spec: dict[str, Any]) -> None:
    seen = 0
    for method, path, kind, media in bodies(spec):
        example = example_of(spec, media)
        assert example is not None, f"{method} {path} has no example"
        if kind == "application/json":
            schema = {**media["schema"], "components": spec["components"]}
            errors = [e.message for e in Draft202012Validator(schema).iter_errors(example)]
            assert errors == [], f"{method} {path}: {errors}"
        seen += 1
    assert seen >= 29


def test_secured_operations_declare_both_api_key_schemes(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "API key: `X-API-Key: rg_...`",
    }
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    for method, path, operation in operations(spec):
        if path.startswith(PUBLIC):
            continue
        assert operation.get("security") == [{"HTTPBearer": []}, {"ApiKey": []}], (method, path)
        assert "401" in operation["responses"], (method, path)
        # The key is a security scheme, not a loose header parameter.
        names = {p["name"].lower() for p in operation.get("parameters", [])}
        assert "x-api-key" not in names, (method, path)


def test_every_operation_documents_its_errors_with_the_error_schema(
    spec: dict[str, Any],
) -> None:
    error = spec["components"]["schemas"]["ErrorOut"]
    assert set(error["required"]) == {"error", "message"}
    assert {"error", "field", "message"} <= set(error["properties"])
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for method, path, operation in operations(spec):
        responses = operation["responses"]
        expected = {"500"}
        if operation.get("parameters") or operation.get("requestBody"):
            expected.add("422")
        if operation.get("requestBody"):
            expected.add("413")
        if "{" in path:
            expected.add("404")
        assert expected <= set(responses), (method, path, sorted(responses))
        for code, response in responses.items():
            if code[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, code)


@pytest.fixture
def world(db_url: str, make_runtime: Callable[..., Runtime]) -> Iterator[World]:
    with open_world(make_runtime(db_url)) as world:
        yield world


def test_the_api_accepts_every_documented_example(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    for method, path, kind, media in bodies(spec):
        if kind != "application/json":
            continue
        real = world.path_values(path)
        target = path.format(**{k: real[k] for k in real if "{" + k + "}" in path})
        answer = world.call(method, target, example_of(spec, media))
        assert answer.status_code < 500, (method, path, answer.text)
        if path.endswith(FREE_FORM):
            assert answer.status_code < 300, (method, path, answer.text)
        elif answer.status_code == 422:
            # A refusal of the state (a conversation not in handoff), never of the body.
            assert "errors" not in answer.json() or not answer.json()["errors"], (
                method,
                path,
                answer.text,
            )
