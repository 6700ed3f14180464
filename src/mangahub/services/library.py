"""LibraryService (being built)."""

from __future__ import annotations

from mangahub.bus import EventBus
from mangahub.cache import Cache
from mangahub.config import Settings
from mangahub.security.tokens import TokenCodec
from mangahub.storage.database import Database


class LibraryService:
    def __init__(self, db: Database) -> None:
        pass
