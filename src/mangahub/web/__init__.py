"""The browser app: pages and assets at ``/``, offline ``/docs``, cookie sessions and
the security headers of the pages. Same origin as ``/api`` and ``/ws``."""

from __future__ import annotations

from fastapi import FastAPI

from mangahub.web import admin, covers, pages, session
from mangahub.web.headers import SecurityHeadersMiddleware


def install_web(app: FastAPI) -> None:
    """Add the web app's routes and headers to ``app`` (created with ``docs_url=None``)."""
    app.include_router(session.router, prefix="/api/auth/session")
    app.include_router(admin.router, prefix="/api/admin")
    app.include_router(covers.router)
    pages.mount(app)
    app.add_middleware(SecurityHeadersMiddleware)
