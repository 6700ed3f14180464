"""The lean path of the catalog searches (http/fast_search.py) answers exactly as the
routes do: the same bytes for plain requests, and anything else left to the route
(typed 422 errors, unknown genres with close names)."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Send

from mangahub.app import Runtime
from mangahub.http import fast_search

PLAIN = [
    "/api/manga/advanced-search?sort_by=rating",
    "/api/manga/advanced-search?q=love&genres=Romance&sort_by=TITLE&order=DESC&page=2",
    "/api/manga/advanced-search?genres=action,%20comedy&status=Ongoing&limit=7",
    "/api/manga/advanced-search?format=manhwa,novel&year=2015&page_size=5",
    "/api/manga/advanced-search?q=one&sort_by=chapters&order=asc&page=1&page_size=3",
    "/api/manga?q=naruto",
    "/api/manga?genre=drama&status=completed&page=2&page_size=4",
    "/api/manga/search?q=piece",
]


@pytest.mark.parametrize("url", PLAIN)
async def test_plain_requests_get_the_routes_bytes(
    client: httpx.AsyncClient, runtime: Runtime, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[bytes] = []
    send_json = fast_search.send_json_bytes

    async def counted(send: Send, body: bytes) -> None:
        answered.append(body)
        await send_json(send, body)

    monkeypatch.setattr(fast_search, "send_json_bytes", counted)
    runtime.catalog_reads.clear()
    fast = await client.get(url)
    assert len(answered) == 1  # by the lean path
    runtime.catalog_reads.clear()
    # A parameter the routes ignore makes the request not plain: the route answers.
    routed = await client.get(url + "&unused=1")
    assert len(answered) == 1
    assert fast.status_code == routed.status_code == 200, fast.text
    assert fast.content == routed.content
    assert fast.headers["content-type"] == routed.headers["content-type"]
    assert sorted(fast.headers) == sorted(routed.headers)  # request id, security headers
    assert fast.json()["data"], url


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("sort_by=stars", "sort_by"),
        ("order=up", "order"),
        ("page=0", "page"),
        ("page_size=1000", "page_size"),
        ("year=12", "year"),
        ("page_size=10&limit=20", "limit"),
        ("format=scroll", "format"),
        ("genres=Actoin", "genres"),
        ("q=" + "x" * 201, "q"),
    ],
)
async def test_invalid_requests_get_the_routes_errors(
    client: httpx.AsyncClient, query: str, field: str
) -> None:
    r = await client.get(f"/api/manga/advanced-search?{query}")
    assert r.status_code == 422, r.text
    assert field in r.text
    if field == "genres":
        assert "Action" in r.json()["error"]["details"][0]["close"]
