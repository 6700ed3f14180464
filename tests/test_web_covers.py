"""Covers come from this origin: fetched once from an enabled source's image host,
kept on disk, and refused (404, the page draws a placeholder) otherwise."""

from __future__ import annotations

from pathlib import Path

import httpx

from mangahub.config import Settings
from mangahub.web.covers import MAX_BYTES, RETRY_AFTER, CoverStore, allowed_by, source_hosts

JPEG = b"\xff\xd8\xff\xe0" + b"0" * 100
URL = "https://uploads.mangadex.org/covers/abc/cover.jpg"


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _store(tmp_path: Path, handler: httpx.MockTransport, clock: Clock | None = None) -> CoverStore:
    return CoverStore(
        tmp_path / "covers",
        allowed_by(("mangadex.org",)),
        transport=handler,
        clock=clock or Clock(),
    )


async def test_a_cover_is_fetched_once_then_served_from_disk(tmp_path: Path) -> None:
    calls: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, content=JPEG, headers={"content-type": "image/jpeg"})

    store = _store(tmp_path, httpx.MockTransport(serve))
    first = await store.path_for(URL)
    assert first is not None and first.read_bytes() == JPEG and first.suffix == ".jpg"
    assert await store.path_for(URL) == first
    assert calls == [URL]


async def test_only_https_images_of_enabled_sources_are_fetched(tmp_path: Path) -> None:
    calls: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if request.url.path.endswith("page.html"):
            return httpx.Response(200, content=b"<html>", headers={"content-type": "text/html"})
        return httpx.Response(
            200, content=b"0" * (MAX_BYTES + 1), headers={"content-type": "image/png"}
        )

    store = _store(tmp_path, httpx.MockTransport(serve))
    assert await store.path_for("http://uploads.mangadex.org/a.jpg") is None
    assert await store.path_for("https://evil.example/a.jpg") is None
    assert await store.path_for("https://mangadex.org.evil.example/a.jpg") is None
    assert calls == []
    assert await store.path_for("https://mangadex.org/page.html") is None  # not an image
    assert await store.path_for("https://mangadex.org/huge.png") is None  # too big
    assert len(calls) == 2
    assert not list((tmp_path / "covers").glob("*"))  # nothing kept

    off = Settings(mangadex_url="", anilist_url="", data_dir=tmp_path)
    assert source_hosts(off) == ()
    assert not allowed_by(source_hosts(off))(URL)


async def test_an_unreachable_cover_is_not_retried_at_once(tmp_path: Path) -> None:
    calls: list[str] = []

    def fail(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        raise httpx.ConnectError("offline", request=request)

    clock = Clock()
    store = _store(tmp_path, httpx.MockTransport(fail), clock)
    assert await store.path_for(URL) is None
    assert await store.path_for(URL) is None
    assert len(calls) == 1
    clock.now += RETRY_AFTER + 1
    assert await store.path_for(URL) is None
    assert len(calls) == 2


async def test_the_route_answers_404_when_sources_are_off(client: httpx.AsyncClient) -> None:
    found = (await client.get("/api/manga", params={"page_size": 1})).json()["data"][0]
    r = await client.get(f"/covers/{found['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert (await client.get("/covers/999999999")).status_code == 404
