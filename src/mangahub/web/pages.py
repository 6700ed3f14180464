"""The pages and assets: the app shell at ``/``, its modules under ``/static``, and
``/docs`` with Swagger UI's assets served from the installed ``swagger-ui-py``
package (Swagger UI 5, which reads OpenAPI 3.1), so nothing is loaded from another origin."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


def _swagger_assets() -> Path | None:
    """Swagger UI's dist folder inside ``swagger-ui-py`` (found without importing it:
    only its files are used); None when the package is missing."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "static"


_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MangaHub API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/static/icon.svg" type="image/svg+xml">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs-init.js"></script>
</body>
</html>
"""


_NO_DOCS = (
    "<!doctype html><title>MangaHub API</title><p>Swagger UI is not installed "
    "(pip install swagger-ui-py); the API description is at /openapi.json.</p>"
)


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    assets = _swagger_assets()
    if assets is None:  # the API still serves /openapi.json
        log.warning("swagger-ui-py is not installed: /docs shows a notice only")
    else:
        app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse(_NO_DOCS, status_code=503)
        return HTMLResponse(_DOCS_PAGE)
