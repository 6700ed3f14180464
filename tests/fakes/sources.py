"""A local MangaDex + AniList replaying real recorded responses, for tests and demos.

One uvicorn server on 127.0.0.1 (ephemeral port) serves ``/mangadex/...`` (REST) and
``/anilist`` (GraphQL POST) from the copies under ``tests/data/sources/`` (see the
PROVENANCE.md there). Tests steer it: fail the next requests with a status, delay a
source, drop connections without answering, add chapters to a feed. Every request
is recorded with the fake's own ``time.monotonic()``.

Run for a demo: ``python -m tests.fakes.sources --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

DATA = Path(__file__).resolve().parent.parent / "data" / "sources"
MANGADEX, ANILIST = "mangadex", "anilist"
# MangaDex's own limits, enforced here so clients meet them in tests.
MANGA_MAX_LIMIT, FEED_MAX_LIMIT, RESULT_WINDOW = 100, 500, 10_000


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    at: float  # time.monotonic() when the request arrived
    source: str
    method: str
    path: str  # below the source prefix: "/manga", "/manga/{id}/feed", "/"
    query: tuple[tuple[str, str], ...]
    status: int  # what the fake answered; 0 for a dropped connection
    body: Any = None  # decoded JSON body of a POST

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)


@dataclass
class _Steering:
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    drops: int = 0
    delay: float = 0.0


def _load(name: str) -> Any:
    return orjson.loads((DATA / name).read_bytes())


class _Catalog:
    """The recorded data, indexed once."""

    def __init__(self) -> None:
        manga: dict[str, dict[str, Any]] = {}
        for name in (
            "mangadex/manga_list_includes_cover_art_limit32.json",
            "mangadex/manga_list_limit100.json",
        ):
            for entity in _load(name)["data"]:
                manga.setdefault(entity["id"], entity)
        nagatoro = _load("mangadex/manga_entity_nagatoro.json")["data"]
        manga.setdefault(nagatoro["id"], nagatoro)
        self.manga = manga
        self.chapters: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for chapter in _load("mangadex/manga_feed_mob_psycho_limit100.json")["data"]:
            owner = next(r["id"] for r in chapter["relationships"] if r["type"] == "manga")
            self.chapters[owner].append(chapter)
        media: dict[int, dict[str, Any]] = {}
        for name in (
            "anilist/page_search_fate_p1.response.json",
            "anilist/page_popular_manga_2022.response.json",
        ):
            for item in _load(name)["data"]["Page"]["media"]:
                # The popular-manga page was asked for type MANGA and omits the field.
                if item.get("type", "MANGA") == "MANGA":
                    media.setdefault(item["id"], item)
        self.media = media
        self.anilist_429 = _load("anilist/error_429_rate_limited.response.json")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _mangadex_error(status: int, detail: str) -> dict[str, Any]:
    # ErrorResponse of MangaDex's OpenAPI spec.
    return {
        "result": "error",
        "errors": [{"id": "fake", "status": status, "title": "error", "detail": detail}],
    }


def _titles(entity: dict[str, Any]) -> list[str]:
    attrs = entity["attributes"]
    return [
        *attrs["title"].values(),
        *(v for alt in attrs.get("altTitles") or () for v in alt.values()),
    ]


def _media_titles(media: dict[str, Any]) -> list[str]:
    return [*(t for t in (media.get("title") or {}).values() if t), *(media.get("synonyms") or ())]


def _chapter_key(chapter: dict[str, Any]) -> tuple[int, float]:
    # MangaDex's chapter labels may end in a letter ("10a"): order by the number.
    found = re.match(r"\d+(?:\.\d+)?", chapter["attributes"].get("chapter") or "")
    return (1, float(found.group())) if found else (0, 0.0)


class FakeSources:
    """See the module docstring; ``async with FakeSources() as fake``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self._data = _Catalog()
        self.requests: list[RecordedRequest] = []
        self._steer: dict[str, _Steering] = {MANGADEX: _Steering(), ANILIST: _Steering()}
        self._added: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # Set on reset() and stop(): delayed answers end early. A request that arrived
        # before a reset is not recorded, so it cannot show up in the next test's list.
        self._wake = asyncio.Event()
        self._generation = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0
        routes = [
            Route("/mangadex/manga", self._manga_list, methods=["GET"]),
            Route("/mangadex/manga/{manga_id}", self._manga_entity, methods=["GET"]),
            Route("/mangadex/manga/{manga_id}/feed", self._feed, methods=["GET"]),
            Route("/anilist", self._graphql, methods=["POST"]),
            Route("/anilist/", self._graphql, methods=["POST"]),
        ]
        self._app = Starlette(routes=routes)

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._wake = asyncio.Event()
        logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)  # once: filters are a set
        config = uvicorn.Config(
            self._asgi,
            host=self._host,
            port=self._port,
            lifespan="off",
            interface="asgi3",
            log_config=None,  # dropped connections log a traceback; nothing else is said
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        # _serve, not serve: the test process keeps its own signal handlers.
        self._task = asyncio.create_task(self._server._serve(), name="fake-sources")
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("fake sources stopped during start-up")
            await asyncio.sleep(0.01)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._wake.set()  # delayed answers end now
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = None
        self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def mangadex_url(self) -> str:
        return f"{self.base_url}/mangadex"

    @property
    def anilist_url(self) -> str:
        return f"{self.base_url}/anilist"

    # --- steering -------------------------------------------------------------------

    def fail_next(
        self, source: str, status: int, count: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        """The next ``count`` requests to ``source`` answer ``status`` (with ``headers``)."""
        self._steer[source].failures.extend([(status, dict(headers or {}))] * count)

    def delay(self, source: str, seconds: float) -> None:
        """Every answer of ``source`` waits ``seconds`` first (0 to stop)."""
        self._steer[source].delay = seconds

    def drop_next(self, source: str, count: int = 1) -> None:
        """The next ``count`` requests to ``source`` get their connection closed unanswered."""
        self._steer[source].drops += count

    def add_chapters(self, mangadex_id: str, chapters: list[dict[str, Any]]) -> None:
        """New entries (MangaDex chapter entities) in ``mangadex_id``'s feed."""
        self._added[mangadex_id].extend(copy.deepcopy(chapters))

    def reset(self) -> None:
        self._generation += 1
        self._wake.set()
        self._wake = asyncio.Event()
        self.requests.clear()
        for steering in self._steer.values():
            steering.failures.clear()
            steering.drops = 0
            steering.delay = 0.0
        self._added.clear()

    def requests_to(self, source: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.source == source]

    @property
    def manga_ids(self) -> list[str]:
        return list(self._data.manga)

    # --- the ASGI front: recording, steering ----------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        arrived = time.monotonic()
        generation, wake = self._generation, self._wake
        path: str = scope["path"]
        source = MANGADEX if path.startswith("/mangadex") else ANILIST
        sub_path = path.removeprefix(f"/{source}") or "/"
        request = Request(scope, receive)
        query = tuple(request.query_params.multi_items())
        body = None
        if scope["method"] == "POST":
            raw = await request.body()
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = None
            receive = _replay(raw)

        def record(status: int) -> None:
            if generation != self._generation:
                return
            self.requests.append(
                RecordedRequest(arrived, source, scope["method"], sub_path, query, status, body)
            )

        steering = self._steer[source]
        if steering.delay > 0:
            try:
                await asyncio.wait_for(wake.wait(), steering.delay)
            except TimeoutError:
                pass
            if generation != self._generation:
                # Outlived a reset: the steering now belongs to the next test.
                await _json({"result": "error", "errors": []}, 503)(scope, receive, send)
                return
        if steering.drops > 0:
            steering.drops -= 1
            record(0)
            await _drop(send)
            return
        if steering.failures:
            status, headers = steering.failures.pop(0)
            record(status)
            await self._failure(source, status, headers)(scope, receive, send)
            return
        status_box: list[int] = []

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status_box.append(message["status"])
                record(message["status"])
            await send(message)

        await self._app(scope, receive, recording_send)

    def _failure(self, source: str, status: int, headers: dict[str, str]) -> Response:
        if source == ANILIST and status == 429:
            return _json(self._data.anilist_429, status, headers)
        if source == ANILIST:
            return _json({"data": None, "errors": [{"message": "Error", "status": status}]}, status)
        return _json(_mangadex_error(status, "injected failure"), status, headers)

    # --- MangaDex -------------------------------------------------------------------

    def _paging(self, request: Request, max_limit: int) -> tuple[int, int] | Response:
        try:
            limit = int(request.query_params.get("limit", "10"))
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            return _json(_mangadex_error(400, "limit and offset must be integers"), 400)
        if not 0 < limit <= max_limit or offset < 0:
            return _json(_mangadex_error(400, f"limit must be 1..{max_limit}"), 400)
        if offset + limit > RESULT_WINDOW:
            detail = (
                "Result window is too large, from + size must be less than or equal to: "
                f"[{RESULT_WINDOW}] but was [{offset + limit}]"
            )
            return _json(_mangadex_error(400, detail), 400)
        return offset, limit

    def _shaped(self, entity: dict[str, Any], includes: list[str]) -> dict[str, Any]:
        """Relationship attributes only for the types asked for in ``includes[]``."""
        out = copy.deepcopy(entity)
        for rel in out.get("relationships") or ():
            if rel["type"] not in includes:
                rel.pop("attributes", None)
        return out

    async def _manga_list(self, request: Request) -> Response:
        paging = self._paging(request, MANGA_MAX_LIMIT)
        if isinstance(paging, Response):
            return paging
        offset, limit = paging
        params = request.query_params
        items = list(self._data.manga.values())
        if title := params.get("title"):
            needle = title.casefold()
            items = [m for m in items if any(needle in t.casefold() for t in _titles(m))]
        if ids := params.getlist("ids[]"):
            wanted = set(ids)
            items = [m for m in items if m["id"] in wanted]
        if since := params.get("createdAtSince"):
            try:
                floor = datetime.fromisoformat(since)
            except ValueError:
                return _json(_mangadex_error(400, "createdAtSince: bad date"), 400)
            items = [
                m
                for m in items
                if datetime.fromisoformat(m["attributes"]["createdAt"]).replace(tzinfo=None)
                >= floor
            ]
        if params.get("order[createdAt]") in ("asc", "desc"):
            items.sort(
                key=lambda m: (m["attributes"]["createdAt"], m["id"]),
                reverse=params["order[createdAt]"] == "desc",
            )
        includes = params.getlist("includes[]")
        page = [self._shaped(m, includes) for m in items[offset : offset + limit]]
        return _json(
            {
                "result": "ok",
                "response": "collection",
                "data": page,
                "limit": limit,
                "offset": offset,
                "total": len(items),
            }
        )

    async def _manga_entity(self, request: Request) -> Response:
        entity = self._data.manga.get(request.path_params["manga_id"])
        if entity is None:
            return _json(_mangadex_error(404, "Manga could not be found"), 404)
        includes = request.query_params.getlist("includes[]")
        return _json({"result": "ok", "response": "entity", "data": self._shaped(entity, includes)})

    async def _feed(self, request: Request) -> Response:
        paging = self._paging(request, FEED_MAX_LIMIT)
        if isinstance(paging, Response):
            return paging
        offset, limit = paging
        manga_id = request.path_params["manga_id"]
        items = [*self._data.chapters.get(manga_id, ()), *self._added.get(manga_id, ())]
        if languages := request.query_params.getlist("translatedLanguage[]"):
            items = [c for c in items if c["attributes"]["translatedLanguage"] in languages]
        order = request.query_params.get("order[chapter]")
        if order in ("asc", "desc"):
            items.sort(key=_chapter_key, reverse=order == "desc")
        includes = request.query_params.getlist("includes[]")
        page = [self._shaped(c, includes) for c in items[offset : offset + limit]]
        return _json(
            {
                "result": "ok",
                "response": "collection",
                "data": page,
                "limit": limit,
                "offset": offset,
                "total": len(items),
            }
        )

    # --- AniList ----------------------------------------------------------------------

    async def _graphql(self, request: Request) -> Response:
        """Answers ``Page { pageInfo media(search | id_in) }`` queries from the recorded
        MANGA media; the query text itself is not interpreted, only its variables."""
        try:
            body = orjson.loads(await request.body())
            variables = body.get("variables") or {}
            assert isinstance(body["query"], str) and "Page" in body["query"]
            page = int(variables.get("page") or 1)
            per_page = int(variables.get("perPage") or 50)
        except (orjson.JSONDecodeError, AssertionError, KeyError, TypeError, ValueError):
            errors = [{"message": "Must provide a Page query with variables.", "status": 400}]
            return _json({"data": None, "errors": errors}, 400)
        if not 1 <= per_page <= 50 or page < 1:
            return _json({"data": None, "errors": [{"message": "bad page", "status": 400}]}, 400)
        items = list(self._data.media.values())
        if (search := variables.get("search")) is not None:
            needle = str(search).casefold()
            items = [m for m in items if any(needle in t.casefold() for t in _media_titles(m))]
        if (ids := variables.get("ids")) is not None:
            wanted = {int(i) for i in ids}
            items = [m for m in items if m["id"] in wanted]
        start = (page - 1) * per_page
        chunk = items[start : start + per_page]
        last_page = max(1, -(-len(items) // per_page))
        info = {
            "total": len(items),
            "currentPage": page,
            "lastPage": last_page,
            "hasNextPage": page < last_page,
            "perPage": per_page,
        }
        return _json({"data": {"Page": {"pageInfo": info, "media": chunk}}})


def _replay(raw: bytes) -> Receive:
    """A ``receive`` that hands the already-read body to the app again."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()  # nothing more; the server cancels us on disconnect
        return {"type": "http.disconnect"}

    return receive


async def _drop(send: Send) -> None:
    """Promise a body, send none of it and end: the server closes the connection, the
    client sees it cut mid-answer (as with a proxy or network failure)."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
        }
    )
    raise _DroppedConnection


class _DroppedConnection(Exception):
    """Raised into uvicorn on purpose: it aborts the connection."""


class _QuietDrops(logging.Filter):
    """uvicorn logs every aborted answer with a traceback; on purpose here, so not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DroppedConnection))


_QUIET_DROPS = _QuietDrops()


async def _serve(port: int) -> None:
    async with FakeSources(port=port) as fake:
        print(f"MangaDex: {fake.mangadex_url}\nAniList:  {fake.anilist_url}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake MangaDex and AniList for demos.")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    try:
        asyncio.run(_serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
