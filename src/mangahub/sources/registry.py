"""The source clients one process uses, built from settings: one client (so one
connection pool and one rate limiter) per source, shared by federated search and
the sync jobs. A source is off when its URL is empty or it is disabled; AniList
stays off unless the operator enables it (its API terms; see docs/sources.md)."""

from __future__ import annotations

from dataclasses import dataclass

from mangahub.config import Settings
from mangahub.sources.anilist import AniListClient
from mangahub.sources.mangadex import MangaDexClient
from mangahub.sources.models import SearchSource

SOURCE_NAMES = (MangaDexClient.name, AniListClient.name)


@dataclass(frozen=True, slots=True)
class SourceClients:
    mangadex: MangaDexClient | None
    anilist: AniListClient | None

    @property
    def enabled(self) -> list[SearchSource]:
        return [c for c in (self.mangadex, self.anilist) if c is not None]

    @property
    def disabled(self) -> list[str]:
        return [name for name in SOURCE_NAMES if name not in {c.name for c in self.enabled}]

    async def aclose(self) -> None:
        for client in (self.mangadex, self.anilist):
            if client is not None:
                await client.aclose()


def build_source_clients(settings: Settings) -> SourceClients:
    mangadex = None
    if settings.mangadex_enabled and settings.mangadex_url.strip():
        mangadex = MangaDexClient(
            settings.mangadex_url.strip(),
            rate_per_second=settings.mangadex_requests_per_second,
            burst=settings.mangadex_burst,
            timeout=settings.source_timeout_seconds,
            sync_reserve=settings.mangadex_sync_reserve,
        )
    anilist = None
    if settings.anilist_enabled and settings.anilist_url.strip():
        anilist = AniListClient(
            settings.anilist_url.strip(),
            requests_per_minute=settings.anilist_requests_per_minute,
            timeout=settings.source_timeout_seconds,
        )
    return SourceClients(mangadex=mangadex, anilist=anilist)
