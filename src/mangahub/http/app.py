"""The FastAPI application for one runtime."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from mangahub import __version__
from mangahub.app import Runtime
from mangahub.http.errors import KeepAliveApp, install_error_handlers
from mangahub.http.limits import BodyLimitMiddleware
from mangahub.http.middleware import (
    AccessLogMiddleware,
    CachedPagesMiddleware,
    CachedSeriesMiddleware,
    HttpMetrics,
    MetricsMiddleware,
    RequestIdMiddleware,
    TrailingSlashMiddleware,
)
from mangahub.http.routes import (
    auth,
    chat,
    health,
    library,
    list_files,
    manga,
    notifications,
    progress,
    social,
    users,
    ws,
)
from mangahub.metrics import ProcessMetrics
from mangahub.web import install_web


def create_app(runtime: Runtime) -> FastAPI:
    app = KeepAliveApp(
        title="MangaHub",
        version=__version__,
        description=(
            "Self-hosted manga tracker. Catalog data from MangaDex (https://mangadex.org), "
            "AniList (https://anilist.co) and MyAnimeList (https://myanimelist.net)."
        ),
        docs_url=None,  # served by the web app from local assets
        openapi_url="/openapi.json",
    )
    app.state.runtime = runtime
    app.state.metrics_registry = registry = CollectorRegistry()
    registry.register(ProcessMetrics())  # TCP, UDP, WebSocket, Redis of this process
    install_error_handlers(app)

    app.include_router(health.router)
    app.include_router(auth.router, prefix="/api/auth")
    # The original clients call /auth/... directly; same handlers, kept out of the docs.
    app.include_router(auth.router, prefix="/auth", include_in_schema=False)
    app.include_router(users.router, prefix="/api/users")
    app.include_router(manga.router, prefix="/api")
    # Before the library router: "/export" is not a manga id.
    app.include_router(list_files.router, prefix="/api/library")
    app.include_router(library.router, prefix="/api/library")
    app.include_router(progress.router, prefix="/api/users/progress")
    app.include_router(social.router, prefix="/api")
    app.include_router(notifications.router, prefix="/api/notifications")
    app.include_router(chat.router, prefix="/api/chat")
    app.include_router(ws.router)
    install_web(app)

    app.add_middleware(
        CachedSeriesMiddleware, reads=runtime.catalog_reads, handler=manga.get_manga.__name__
    )
    app.add_middleware(CachedPagesMiddleware, reads=runtime.catalog_reads)
    app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(registry))
    app.add_middleware(TrailingSlashMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    if runtime.settings.http_access_log:
        app.add_middleware(AccessLogMiddleware)
    app.add_middleware(RequestIdMiddleware)  # outermost: every log line of a request has it
    return app
