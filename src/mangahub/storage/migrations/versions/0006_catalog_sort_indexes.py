"""catalog sort indexes: one per sort key and direction, with the id tie-break

Every catalog order is ``<key> <direction>, id ASC`` (rating and chapters with NULLS
LAST). A plain index on the key serves only the ascending order on SQLite (its index
entries end in the rowid) and neither on PostgreSQL (equal keys come in heap order),
so a descending sort, or any sort by title, sorted all 10,000 rows per page. These
indexes match each order exactly; the planner then reads one page's rows.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-04 18:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> (SQLite columns, PostgreSQL columns). SQLite has no NULLS clause in CREATE
# INDEX and already puts NULLs last in a descending order (they sort lowest).
INDEXES: dict[str, tuple[str, str]] = {
    "ix_manga_popularity_desc_id": ("popularity DESC, id", "popularity DESC, id"),
    "ix_manga_popularity_id": ("popularity, id", "popularity, id"),
    "ix_manga_rating_desc_id": (
        "average_rating DESC, id",
        "average_rating DESC NULLS LAST, id",
    ),
    "ix_manga_rating_id": ("average_rating, id", "average_rating ASC NULLS LAST, id"),
    "ix_manga_updated_desc_id": ("updated_at DESC, id", "updated_at DESC, id"),
    "ix_manga_updated_id": ("updated_at, id", "updated_at, id"),
    "ix_manga_chapters_desc_id": (
        "total_chapters DESC, id",
        "total_chapters DESC NULLS LAST, id",
    ),
    "ix_manga_chapters_id": ("total_chapters, id", "total_chapters ASC NULLS LAST, id"),
    # The title sort key of storage/search.py: lower(title), by code point.
    "ix_manga_title_key_id": ("lower(title), id", 'lower(title) COLLATE "C", id'),
    "ix_manga_title_key_desc_id": (
        "lower(title) DESC, id",
        'lower(title) COLLATE "C" DESC, id',
    ),
}


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, (lite, pg) in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON manga ({lite if sqlite else pg})")


def downgrade() -> None:
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
