"""The one uvicorn configuration both benchmark servers use, so the only difference
between the MangaHub server and the bare baseline is the application itself."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
from starlette.types import ASGIApp


def uvicorn_config(app: ASGIApp, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        # As in mangahub.servers.HttpServer: the runtime is opened outside the app,
        # and nothing sits in front of the server to set forwarded headers.
        lifespan="off",
        proxy_headers=False,
    )


async def serve(app: ASGIApp, port: int, ready_file: Path | None, info: dict[str, Any]) -> None:
    """Serve until SIGINT/SIGTERM; announce readiness once the socket listens."""
    server = uvicorn.Server(uvicorn_config(app, port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task  # surfaces a bind error
            raise RuntimeError("uvicorn stopped during start-up")
        await asyncio.sleep(0.01)
    if ready_file is not None:
        write_ready_file(ready_file, {"pid": os.getpid(), "port": port, **info})
    await task


def write_ready_file(path: Path, info: dict[str, Any]) -> None:
    # Written to a temp name and renamed: the driver never reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """uvicorn's ``loop="uvloop"`` only applies to ``uvicorn.run``; a server started
    with ``Server.serve()`` runs on whatever loop it is given, so give it uvloop."""
    uvloop.run(main())
