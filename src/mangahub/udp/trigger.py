"""The internal notification trigger (port 8085, SPEC "UDP notifications ... trigger").

A small FastAPI app for other programs of the deployment (source sync jobs, admin
scripts), served by the same uvicorn-based :class:`~mangahub.servers.HttpServer`
as the public API, under the name ``trigger``:

- ``POST /notify/new-manga {manga_id, title}``: to every user;
- ``POST /notify/new-chapter {manga_id, title, chapter, old_chapter?}``: to the
  series' followers (the readers who list it);
- ``POST /notify/manga-update {manga_id, title, changes: [{field, old_value, new_value}]}``:
  to the series' followers.

Each answers ``202 {"accepted": true, "recipients": n}`` once the notifications are
stored (durability first: publishing follows, and the UDP door re-reads storage).
Who receives what is the NotificationService's rule, not this module's.

Every request must carry ``X-Internal-Token: <internal_token>``. It is checked
before the body is read (an ASGI guard in front of the app), in constant time;
missing or wrong → 401 in the error envelope. Bodies are validated by pydantic:
422 ``validation_error`` (400 ``bad_request`` when not JSON); unknown manga → 404.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field, StringConstraints
from starlette.types import ASGIApp, Receive, Scope, Send

from mangahub.app import Runtime
from mangahub.domain.schemas import ChapterNumber, Input, Title
from mangahub.http.errors import error_response, install_error_handlers
from mangahub.servers import HttpServer

TOKEN_HEADER = b"x-internal-token"
MangaId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class NewMangaIn(Input):
    manga_id: MangaId
    title: Title


class NewChapterIn(Input):
    manga_id: MangaId
    title: Title
    chapter: ChapterNumber
    old_chapter: ChapterNumber | None = None


class ChangeIn(Input):
    field: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    old_value: Any = None
    new_value: Any = None


class MangaUpdateIn(Input):
    manga_id: MangaId
    title: Title
    changes: Annotated[list[ChangeIn], Field(min_length=1, max_length=100)]


class AcceptedOut(BaseModel):
    accepted: Literal[True] = True
    recipients: int


class InternalTokenGuard:
    """Answers 401 unless ``X-Internal-Token`` equals the secret, before the request
    reaches routing or body parsing (so an outsider learns nothing about them)."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.app = app
        self._secret = secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = next((v for k, v in scope["headers"] if k == TOKEN_HEADER), b"")
            # compare_digest: the time taken does not reveal how much of it matched.
            if not hmac.compare_digest(given, self._secret):
                response = error_response(
                    401, "unauthorized", "missing or invalid X-Internal-Token header"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_trigger_app(runtime: Runtime) -> FastAPI:
    """The trigger app for one runtime (its ``internal_token`` is the secret)."""
    if runtime.settings.internal_token is None:
        raise RuntimeError("internal_token is not set (ensure_secrets fills it at start-up)")
    app = FastAPI(
        title="MangaHub notification trigger (internal)",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)
    notifications = runtime.notifications

    @app.post("/notify/new-manga", status_code=202)
    async def new_manga(body: NewMangaIn) -> AcceptedOut:
        return AcceptedOut(
            recipients=await notifications.notify_new_manga(body.manga_id, body.title)
        )

    @app.post("/notify/new-chapter", status_code=202)
    async def new_chapter(body: NewChapterIn) -> AcceptedOut:
        recipients = await notifications.notify_new_chapter(
            body.manga_id, body.title, body.chapter, body.old_chapter
        )
        return AcceptedOut(recipients=recipients)

    @app.post("/notify/manga-update", status_code=202)
    async def manga_update(body: MangaUpdateIn) -> AcceptedOut:
        changes = [change.model_dump() for change in body.changes]
        recipients = await notifications.notify_manga_update(body.manga_id, body.title, changes)
        return AcceptedOut(recipients=recipients)

    app.add_middleware(
        InternalTokenGuard, secret=runtime.settings.internal_token.get_secret_value()
    )
    return app


def trigger_server(runtime: Runtime, host: str, port: int) -> HttpServer:
    """The ``trigger`` server of the ``udp`` part."""
    return HttpServer(runtime, host, port, app=create_trigger_app(runtime), name="trigger")
