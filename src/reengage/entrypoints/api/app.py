"""The FastAPI application: routers, error handlers, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from reengage import __version__
from reengage.adapters.db.loop_writes import close_on_loop
from reengage.adapters.redis.shards import connect_async
from reengage.config import DEFAULT_MAX_BODY_BYTES, Settings
from reengage.entrypoints import metrics_server
from reengage.entrypoints.api.admins import admins_router
from reengage.entrypoints.api.agents import agents_router
from reengage.entrypoints.api.api_keys import api_keys_router
from reengage.entrypoints.api.audit import audit_router
from reengage.entrypoints.api.body_limit import BodyLimit
from reengage.entrypoints.api.bots import bots_router
from reengage.entrypoints.api.campaign_edits import campaign_edits_router
from reengage.entrypoints.api.campaign_replay import campaign_replay_router
from reengage.entrypoints.api.campaign_results import campaign_results_router
from reengage.entrypoints.api.campaigns import campaigns_router
from reengage.entrypoints.api.contacts import contacts_router
from reengage.entrypoints.api.conversations import conversations_router
from reengage.entrypoints.api.docs import install_offline_docs
from reengage.entrypoints.api.errors import install_error_handlers
from reengage.entrypoints.api.event_subscriptions import event_subscriptions_router
from reengage.entrypoints.api.events import events_router
from reengage.entrypoints.api.flows import flows_router
from reengage.entrypoints.api.hot_paths import HotPaths
from reengage.entrypoints.api.media import media_router
from reengage.entrypoints.api.policies import policies_router
from reengage.entrypoints.api.request_id import RequestId
from reengage.entrypoints.api.simulator import simulator_router
from reengage.entrypoints.api.webhooks import webhooks_router
from reengage.entrypoints.console.app import install_console
from reengage.entrypoints.logging import configure_logging_from
from reengage.entrypoints.manager_bot.webhook import ManagerWebhook, manager_webhook_router
from reengage.entrypoints.startup import settle_heap
from reengage.runtime import Runtime


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """With Redis: an asyncio client for the hot path, on the loop that serves the app."""
    runtime: Runtime = app.state.runtime
    url = runtime.settings.redis_url
    cluster = runtime.settings.redis_cluster
    client = connect_async(url, cluster=cluster) if url else None
    app.state.loop_redis = client
    try:
        yield
    finally:
        app.state.loop_redis = None
        if client is not None:
            await client.aclose()
        await close_on_loop()  # the texts' connection of this loop, when it made one
        if app.state.manager_bot is not None:
            await app.state.manager_bot.close()


def app_from_environment() -> FastAPI:
    """The API of a runtime built from the environment's settings (one per API process)."""
    settings = Settings()
    configure_logging_from(settings)
    app = create_app(Runtime.build(settings))
    settle_heap()
    return app


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        title="reengage",
        version=__version__,
        description="Activity tracking, inactivity timeouts and recovery campaigns for bots.",
        docs_url=None,  # served from the package's assets below, not from a CDN
        redoc_url=None,
    )
    app.state.runtime = runtime
    # The manager bot by webhook, when configured (else it long-polls on its own).
    app.state.manager_bot = ManagerWebhook.configured(runtime) if runtime is not None else None
    # Inside the safety net: a body cut short must be a 413, not an unexpected error.
    # (`create_app(None)` builds the app for its OpenAPI schema alone.)
    limit = runtime.settings.max_body_bytes if runtime is not None else DEFAULT_MAX_BODY_BYTES
    app.add_middleware(HotPaths)  # beneath the body limit, the safety net and the request id
    app.add_middleware(BodyLimit, limit=limit)
    install_error_handlers(app)
    app.add_middleware(RequestId)  # outermost: the safety net's 500 carries the id too
    # The hot paths first: a request is matched against the routes in this order (what
    # `HotPaths` answers never reaches them).
    app.include_router(events_router)
    app.include_router(webhooks_router)
    app.include_router(bots_router)
    app.include_router(api_keys_router)
    app.include_router(conversations_router)
    app.include_router(simulator_router)
    app.include_router(flows_router)
    app.include_router(policies_router)
    app.include_router(agents_router)
    app.include_router(campaigns_router)
    app.include_router(campaign_results_router)
    app.include_router(campaign_replay_router)
    app.include_router(audit_router)
    app.include_router(media_router)
    app.include_router(admins_router)
    app.include_router(campaign_edits_router)
    app.include_router(contacts_router)
    app.include_router(manager_webhook_router)
    install_console(app)
    install_offline_docs(app)
    app.include_router(event_subscriptions_router)

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
        body = generate_latest(metrics_server.registry())
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    return app
