"""reading entries: keep only the indexes that pay for their writes

Every progress write changes ``chapter``, ``updated_at`` and ``version``, and the
upsert rewrites every index holding a column it sets: with seven secondary indexes a
write touched eight B-trees, most of its cost on SQLite. The list view's sorts
(updated, added, score, chapter, status filter) read one user's rows, which the
primary key ``(user_id, manga_id)`` already finds; sorting a few hundred rows costs
less than keeping five indexes current on every write. Kept: ``(user_id, version)``
for the TCP catch-up, and ``manga_id`` for new-chapter recipients and the average
score.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 01:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED: dict[str, str] = {
    "ix_reading_entries_user_updated": "user_id, updated_at",
    "ix_reading_entries_user_added": "user_id, added_at",
    "ix_reading_entries_user_score": "user_id, score",
    "ix_reading_entries_user_chapter": "user_id, chapter",
    "ix_reading_entries_user_status": "user_id, status",
}


def upgrade() -> None:
    for name in DROPPED:
        op.execute(f"DROP INDEX IF EXISTS {name}")


def downgrade() -> None:
    for name, columns in DROPPED.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON reading_entries ({columns})")
