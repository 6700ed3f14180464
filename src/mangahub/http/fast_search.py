"""``GET /api/manga/advanced-search`` and ``GET /api/manga`` (``/api/manga/search``)
without FastAPI's routing, dependencies and parameter validation, which cost more
than the in-memory search itself.

Only plain requests take this path: every parameter known, given once, not blank,
and valid by the rules the routes declare (lengths, ranges, enum values in any case).
Anything else, and any error the search raises (an unknown genre or format, the
database away), goes on to the app, whose route validates and answers as always: the
same 422 or 503 bodies, and the same page bytes for the same request either way,
since both paths render through :func:`.routes.manga.advanced_search_page` and
:func:`.routes.manga.list_page`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Literal, TypeVar, get_args
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from mangahub.app import Runtime
from mangahub.domain.enums import MangaStatus, SortBy
from mangahub.domain.schemas import MAX_PAGE_SIZE, MAX_YEAR, MIN_YEAR
from mangahub.http.deps import Pagination
from mangahub.http.responses import send_json_bytes
from mangahub.http.routes import manga

E = TypeVar("E", MangaStatus, SortBy)

ADVANCED_PATH = "/api/manga/advanced-search"
LIST_PATHS = ("/api/manga", "/api/manga/search")
_ADVANCED_KEYS = frozenset(
    {"q", "genres", "status", "sort_by", "order", "format", "year", "page", "page_size", "limit"}
)
_LIST_KEYS = frozenset({"q", "genre", "status", "page", "page_size", "limit"})
# The routes' Query(max_length=...) of each text parameter.
_MAX_LENGTH = {"q": 200, "genres": 500, "genre": 100, "format": 200}
_ORDERS: tuple[str, ...] = get_args(Literal["asc", "desc"])


class Unfit(Exception):
    """The request is not a plain one: the app answers it."""


class FastSearchMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        # Counted as the handlers they stand in for (MetricsMiddleware reads route.name).
        self._advanced = SimpleNamespace(name=manga.advanced_search.__name__)
        self._list = SimpleNamespace(name=manga.list_manga.__name__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            render: Callable[[], Awaitable[bytes]] | None = None
            try:
                if path == ADVANCED_PATH:
                    render, route = self._advanced_page(scope), self._advanced
                elif path in LIST_PATHS:
                    render, route = self._list_page(scope), self._list
            except Unfit:
                render = None
            if render is not None:
                try:
                    body = await render()
                except Exception:  # the route raises it again, through the error handlers
                    body = None
                if body is not None:
                    scope["route"] = route
                    await send_json_bytes(send, body)
                    return
        await self.app(scope, receive, send)

    def _advanced_page(self, scope: Scope) -> Callable[[], Awaitable[bytes]]:
        params = _params(scope, _ADVANCED_KEYS)
        order = params.get("order")
        if order is not None:
            order = order.strip().lower()
            if order not in _ORDERS:
                raise Unfit
        year = _number(params, "year", MIN_YEAR, MAX_YEAR)
        search = manga.AdvancedSearch(
            q=params.get("q"),
            genres=params.get("genres"),
            status=_enum(MangaStatus, params.get("status")),
            sort_by=_enum(SortBy, params.get("sort_by")),
            order="asc" if order == "asc" else "desc" if order == "desc" else None,
            format=params.get("format"),
            year=year,
        )
        paging = _paging(params)
        return lambda: manga.advanced_search_page(self.runtime, paging, search)

    def _list_page(self, scope: Scope) -> Callable[[], Awaitable[bytes]]:
        params = _params(scope, _LIST_KEYS)
        q, genre = params.get("q"), params.get("genre")
        status = _enum(MangaStatus, params.get("status"))
        paging = _paging(params)
        return lambda: manga.list_page(self.runtime, paging, q, genre, status)


def _params(scope: Scope, known: frozenset[str]) -> dict[str, str]:
    """The query parameters (decoded as Starlette does), each known, once, not blank."""
    pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not known.issuperset(params):
        raise Unfit
    for name, value in params.items():
        if not value.strip() or len(value) > _MAX_LENGTH.get(name, 100):
            raise Unfit
    return params


def _enum(kind: type[E], value: str | None) -> E | None:
    if value is None:
        return None
    try:
        return kind(value.strip().lower())
    except ValueError:
        raise Unfit from None


def _number(params: dict[str, str], name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 7):
        raise Unfit
    number = int(value)
    if not low <= number <= high:
        raise Unfit
    return number


def _paging(params: dict[str, str]) -> Pagination:
    page = _number(params, "page", 1, 1_000_000)
    size = _number(params, "page_size", 1, MAX_PAGE_SIZE)
    limit = _number(params, "limit", 1, MAX_PAGE_SIZE)
    if size is not None and limit is not None and size != limit:
        raise Unfit
    return Pagination(page=page or 1, page_size=size or limit or 20)
