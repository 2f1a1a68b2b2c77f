"""The FastAPI application: routers, error handlers, health and metrics."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from reengage import __version__
from reengage.entrypoints.api.admins import admins_router
from reengage.entrypoints.api.agents import agents_router
from reengage.entrypoints.api.bots import bots_router
from reengage.entrypoints.api.campaign_edits import campaign_edits_router
from reengage.entrypoints.api.contacts import contacts_router
from reengage.entrypoints.api.conversations import conversations_router
from reengage.entrypoints.api.events import events_router
from reengage.entrypoints.api.flows import flows_router
from reengage.entrypoints.api.media import media_router
from reengage.entrypoints.api.recovery import recovery_router
from reengage.entrypoints.api.simulator import simulator_router
from reengage.entrypoints.api.webhooks import webhooks_router
from reengage.runtime import Runtime
from reengage.services.errors import ServiceError

_UNION_BRANCH = re.compile(r"^(?:function-\w+\[.*, )?(EventBatch|EventIn)\]?$")


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _relevant(errors: list[dict[str, Any]], body: Any) -> list[dict[str, Any]]:
    # A body may be one event or a batch: report only the errors of the shape that was sent.
    shape = "EventBatch" if isinstance(body, dict) and "events" in body else "EventIn"
    out = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        if loc[:1] == ("body",):
            loc = loc[1:]
            # Union branches are labelled `EventIn` or `function-after[..., EventIn]`.
            branch = _UNION_BRANCH.search(str(loc[0])) if loc else None
            if branch:
                if branch.group(1) != shape:
                    continue
                loc = loc[1:]
        out.append({"field": _field_path(loc) or "body", "message": err.get("msg", "invalid")})
    return out


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _relevant(list(exc.errors()), exc.body)
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return JSONResponse(
        status_code=422,
        content={"error": "invalid_input", **first, "errors": errors},
    )


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return JSONResponse(
        status_code=exc.status,
        content={"error": exc.code, "field": exc.field, "message": exc.message},
    )


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="reengage",
        version=__version__,
        description="Activity tracking, inactivity timeouts and recovery campaigns for bots.",
    )
    app.state.runtime = runtime
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.include_router(events_router)
    app.include_router(bots_router)
    app.include_router(conversations_router)
    app.include_router(webhooks_router)
    app.include_router(simulator_router)
    app.include_router(flows_router)
    app.include_router(agents_router)
    app.include_router(recovery_router)
    app.include_router(media_router)
    app.include_router(admins_router)
    app.include_router(campaign_edits_router)
    app.include_router(contacts_router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Readiness: the database and the timer store answer."""
        checks: dict[str, str] = {}
        try:
            with runtime.sessions() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            runtime.timers.count()
            checks["timers"] = "ok"
        except Exception as exc:
            checks["timers"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(status_code=200 if ok else 503, content=checks)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
