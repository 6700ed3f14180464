"""The catalog: series, genres and chapters; ranked search; bulk imports.

Every writer of series rows (imports, the bundled seed, admin creates, edits and
deletes) takes the *catalog lock* first, so two processes starting at once, or a sync
job racing an admin, never pick the same slug, insert the same MangaDex series twice,
or write back a series over an edit made meanwhile.
"""

from mangahub.services.catalog.importer import IMPORT_BATCH
from mangahub.services.catalog.params import (
    effective_order,
    parse_order,
    parse_sort,
    parse_status,
    split_genres,
)
from mangahub.services.catalog.seed import SEED_SYNC_TYPE
from mangahub.services.catalog.service import (
    GENRES_CACHE_KEY,
    GENRES_CACHE_TTL,
    CatalogService,
)
from mangahub.services.catalog.text import (
    build_search_text,
    genre_slug,
    slugify,
    unique_slug,
)

__all__ = [
    "GENRES_CACHE_KEY",
    "GENRES_CACHE_TTL",
    "IMPORT_BATCH",
    "SEED_SYNC_TYPE",
    "CatalogService",
    "build_search_text",
    "effective_order",
    "genre_slug",
    "parse_order",
    "parse_sort",
    "parse_status",
    "slugify",
    "split_genres",
    "unique_slug",
]
