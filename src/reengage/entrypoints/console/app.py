"""Where the console joins the API's FastAPI app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from reengage.entrypoints.console.admin_pages import admin_router
from reengage.entrypoints.console.auth_pages import auth_router
from reengage.entrypoints.console.bot_lifecycle_pages import bot_lifecycle_router
from reengage.entrypoints.console.campaign_pages import campaign_router
from reengage.entrypoints.console.campaign_results_pages import results_router
from reengage.entrypoints.console.episode_pages import episode_router
from reengage.entrypoints.console.handoff_pages import handoff_router
from reengage.entrypoints.console.pages import pages_router
from reengage.entrypoints.console.timeout_pages import timeout_router
from reengage.entrypoints.console.web import PREFIX
from reengage.entrypoints.console.whatsapp_pages import whatsapp_router

STATIC = Path(__file__).parent / "static"


def install_console(app: FastAPI) -> None:
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(auth_router)
    app.include_router(pages_router)
    app.include_router(admin_router)
    for router in (
        campaign_router,
        results_router,
        episode_router,
        timeout_router,
        handoff_router,
        whatsapp_router,
        bot_lifecycle_router,
    ):
        app.include_router(router)

    @app.get(PREFIX, include_in_schema=False)
    def console_root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)
