"""``GET /covers/{manga_id}``: series covers from this origin.

Pages never load from another origin, so the server fetches a cover once from its
source (MangaDex or AniList image hosts only, and only while that source is enabled),
keeps it under ``<data_dir>/covers`` named by a hash of its URL (a changed URL is a new
file), and serves it from there. A cover that cannot be had (offline, source off, not
an image, too big) answers 404, remembered for a while, and the page draws a placeholder.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from mangahub.config import Settings
from mangahub.domain.errors import NotFound
from mangahub.http.deps import RuntimeDep

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

IMAGE_TYPES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
}
MAX_BYTES = 4 * 1024 * 1024
FETCH_TIMEOUT = 5.0
RETRY_AFTER = 600.0  # seconds a failed cover is not tried again
_MAX_FAILED = 10_000  # bound on the remembered failures
_PARALLEL = 4  # fetches at once per process


def source_hosts(settings: Settings) -> tuple[str, ...]:
    """Image hosts of the enabled sources (an empty source URL turns a source off)."""
    hosts: list[str] = []
    if settings.mangadex_url:
        hosts.append("mangadex.org")
    if settings.anilist_url:
        hosts.append("anilist.co")
    return tuple(hosts)


def allowed_by(hosts: tuple[str, ...]) -> Callable[[str], bool]:
    def allowed(url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        return parts.scheme == "https" and any(h == host or host.endswith("." + h) for h in hosts)

    return allowed


class CoverStore:
    def __init__(
        self,
        folder: Path,
        allowed: Callable[[str], bool],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._folder = folder
        self._allowed = allowed
        self._transport = transport
        self._clock = clock
        self._failed: dict[str, float] = {}
        self._gate = asyncio.Semaphore(_PARALLEL)

    async def path_for(self, url: str) -> Path | None:
        """The local file of the cover at ``url``, fetched on first use; None if unavailable."""
        key = hashlib.sha256(url.encode()).hexdigest()[:40]
        for suffix in IMAGE_TYPES.values():
            cached = self._folder / f"{key}{suffix}"
            if cached.is_file():
                return cached
        failed_at = self._failed.get(key)
        if failed_at is not None and self._clock() - failed_at < RETRY_AFTER:
            return None
        if not self._allowed(url):
            return None
        async with self._gate:
            found = await self._fetch(url, key)
        if found is None:
            if len(self._failed) >= _MAX_FAILED:
                self._failed.clear()
            self._failed[key] = self._clock()
        return found

    async def _fetch(self, url: str, key: str) -> Path | None:
        try:
            async with (
                httpx.AsyncClient(timeout=FETCH_TIMEOUT, transport=self._transport) as client,
                client.stream("GET", url) as response,
            ):
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                suffix = IMAGE_TYPES.get(kind)
                if response.status_code != 200 or suffix is None:
                    return None
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        return None
        except httpx.HTTPError as exc:
            log.info("cover %s unavailable: %s", url, exc)
            return None
        self._folder.mkdir(parents=True, exist_ok=True)
        target = self._folder / f"{key}{suffix}"
        partial = target.with_suffix(".part")
        partial.write_bytes(bytes(body))
        partial.replace(target)  # atomic: a reader never sees half a file
        return target


def cover_store(app_state: object, settings: Settings) -> CoverStore:
    store: CoverStore | None = getattr(app_state, "cover_store", None)
    if store is None:
        store = CoverStore(settings.data_dir / "covers", allowed_by(source_hosts(settings)))
        app_state.cover_store = store  # type: ignore[attr-defined]
    return store


@router.get("/covers/{manga_id}")
async def cover(manga_id: int, request: Request, runtime: RuntimeDep) -> FileResponse:
    manga = await runtime.catalog.get_manga(manga_id)
    path = None
    if manga.cover_url:
        path = await cover_store(request.app.state, runtime.settings).path_for(manga.cover_url)
    if path is None:
        raise NotFound("no cover")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})
