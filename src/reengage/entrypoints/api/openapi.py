"""The OpenAPI document, completed where FastAPI leaves gaps: an example for every request
body, both API-key schemes on every secured operation, and every error an operation can
answer documented with the one error schema (`ErrorOut`).

The examples live in one table, keyed by operation, rather than in each model: several
bodies are free-form JSON checked by the domain (policies, campaigns, flows, voice), which
have no model to carry one. `tests/e2e/test_openapi_doc.py` checks the table covers every
body and that the API accepts each example."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"ApiKey": []}]

_POLICY = {
    "timeout": "30m",
    "reminders": [{"after": "10m", "text": "Ainda está aí?"}],
    "action": "close",
    "action_message": "Encerramos por inatividade. Escreva quando quiser voltar.",
}
_FLOW = {
    "start": "hello",
    "nodes": [
        {"id": "hello", "type": "message", "text": "Olá! Sou o bot da loja.", "next": "ask"},
        {"id": "ask", "type": "question", "text": "Qual plano? (mensal/anual)", "var": "plan"},
    ],
}
_CAMPAIGN = {
    "time_zone": "America/Sao_Paulo",
    "threshold": "10m",
    "ignore_paid": True,
    "steps": [
        {
            "schedule": "30m",
            "blocks": [
                {"kind": "text", "text": "Ei, esqueceu algo no carrinho?"},
                {"kind": "photo", "url": "https://cdn.example.com/promo.png", "delay": "5s"},
            ],
        },
        {"schedule": "amanhã 09:00", "blocks": [{"kind": "text", "text": "Última chance!"}]},
    ],
}
_EVENT = {
    "id": "msg-8812",
    "type": "message.user",
    "bot_id": 1,
    "user_id": "5511999990000",
    "occurred_at": "2026-03-01T12:00:00Z",
    "text": "Quero o plano anual",
}

REQUEST_EXAMPLES: dict[str, Any] = {
    "POST /v1/events": _EVENT,
    "POST /v1/bots": {"name": "Loja", "channel": "telegram", "credentials": {"token": "123:AB"}},
    "PATCH /v1/bots/{bot_id}": {"name": "Loja", "inactivity_threshold_seconds": 600},
    "PUT /v1/bots/{bot_id}/credentials": {"credentials": {"token": "123456:ABC-def"}},
    "PUT /v1/bots/{bot_id}/token": {"token": "123456:ABC-def"},
    "POST /v1/simulator/{bot_id}/messages": {"chat_id": "42", "text": "oi"},
    "PUT /v1/bots/{bot_id}/flows/{key}": _FLOW,
    "PUT /v1/bots/{bot_id}/entry-flow": {"entry_flow": "welcome"},
    "PUT /v1/policies/organization": _POLICY,
    "PUT /v1/bots/{bot_id}/policy": _POLICY,
    "PUT /v1/bots/{bot_id}/flows/{key}/policy": _POLICY,
    "PUT /v1/bots/{bot_id}/flows/{key}/nodes/{node}/policy": {"timeout": "20m"},
    "POST /v1/conversations/{conversation_id}/take": {"agent": "ana"},
    "POST /v1/conversations/{conversation_id}/reply": {"agent": "ana", "text": "Oi! Posso ajudar?"},
    "POST /v1/conversations/{conversation_id}/flow": {"flow": "welcome"},
    "PUT /v1/bots/{bot_id}/campaign": _CAMPAIGN,
    "PUT /v1/bots/{bot_id}/campaign/enabled": {"enabled": True},
    "POST /v1/bots/{bot_id}/campaign/preview": {"time_zone": "America/Sao_Paulo"},
    "POST /v1/bots/{bot_id}/campaign/replay": {"days": 7, "compare": True},
    "POST /v1/bots/{bot_id}/campaign/steps": {"schedule": "2h"},
    "PUT /v1/bots/{bot_id}/campaign/steps/{step}/schedule": {"schedule": "amanhã 09:00"},
    "POST /v1/bots/{bot_id}/campaign/steps/{step}/move": {"offset": -1},
    "POST /v1/bots/{bot_id}/campaign/exclusions": {"user_id": "5511999990000"},
    "PATCH /v1/bots/{bot_id}/contacts/{user_id}": {"name": "Ana", "time_zone": "America/Recife"},
    "PUT /v1/voice": {"min_gap": "2h", "optout_keywords": ["parar", "sair", "stop"]},
    "PUT /v1/bots/{bot_id}/voice": {"optin_keywords": ["voltar"], "optout_confirmation": "Ok!"},
    "POST /v1/event-subscriptions": {
        "url": "https://example.com/reengage-events",
        "event_types": ["episode.ended", "delivery.failed"],
        "description": "CRM",
    },
    "PATCH /v1/event-subscriptions/{subscription_id}": {"enabled": False},
    "POST /v1/media": {"file": "promo.png (the file's bytes)"},
}


def _has_example(spec: dict[str, Any], media: dict[str, Any]) -> bool:
    if media.get("example") is not None or media.get("examples"):
        return True
    ref = media.get("schema", {}).get("$ref", "")
    schema = spec["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}) if ref else {}
    return bool(schema.get("examples") or schema.get("example"))


def _errors_of(operation: dict[str, Any], path: str, secured: bool) -> list[int]:
    codes = [500]
    if secured:
        codes.append(401)
    if "{" in path:
        codes.append(404)
    if operation.get("parameters") or operation.get("requestBody"):
        codes.append(422)
    if operation.get("requestBody"):
        codes.append(413)
        if "application/json" in operation["requestBody"].get("content", {}):
            codes.append(415)
    return codes


def _complete(spec: dict[str, Any]) -> dict[str, Any]:
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            secured = any("HTTPBearer" in s or "ApiKey" in s for s in operation.get("security", []))
            if secured:
                operation["security"] = SECURITY
            responses = operation.setdefault("responses", {})
            for code in _errors_of(operation, path, secured):
                responses.setdefault(str(code), {"description": _DESCRIPTIONS[code]})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
            for media in operation.get("requestBody", {}).get("content", {}).values():
                example = REQUEST_EXAMPLES.get(f"{method.upper()} {path}")
                if example is not None and not _has_example(spec, media):
                    media["example"] = example
    schemas = spec.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


_DESCRIPTIONS = {
    401: "Missing, unknown or revoked API key",
    404: "No such resource (or not the organization's)",
    413: "The request body is larger than the limit",
    415: "The body is not JSON",
    422: "Invalid input: `field` names it; `errors` lists every mistake",
    500: "Unexpected error (logged with the request id)",
}


def document(app: FastAPI) -> None:
    """Make `app.openapi()` return the completed document (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _complete(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
