"""catalog columns: mal_id, format, volumes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 18:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORMATS = "'manga', 'manhwa', 'manhua', 'one_shot', 'novel', 'doujinshi', 'other'"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Plain ALTER TABLE: a batch rebuild of `manga` would drop the FTS5 triggers.
        # SQLite takes CHECK (not UNIQUE) in ADD COLUMN, so uniqueness is an index.
        op.execute("ALTER TABLE manga ADD COLUMN mal_id INTEGER")
        op.execute(
            "ALTER TABLE manga ADD COLUMN format VARCHAR(20) DEFAULT 'manga' NOT NULL "
            f"CONSTRAINT ck_manga_format CHECK (format IN ({FORMATS}))"
        )
        op.execute(
            "ALTER TABLE manga ADD COLUMN volumes INTEGER "
            "CONSTRAINT ck_manga_volumes CHECK (volumes IS NULL OR volumes >= 0)"
        )
        op.create_index("uq_manga_mal_id", "manga", ["mal_id"], unique=True)
        return
    op.add_column("manga", sa.Column("mal_id", sa.Integer(), nullable=True))
    op.add_column(
        "manga", sa.Column("format", sa.String(length=20), server_default="manga", nullable=False)
    )
    op.add_column("manga", sa.Column("volumes", sa.Integer(), nullable=True))
    op.create_unique_constraint(op.f("uq_manga_mal_id"), "manga", ["mal_id"])
    op.create_check_constraint(op.f("ck_manga_format"), "manga", f"format IN ({FORMATS})")
    op.create_check_constraint(op.f("ck_manga_volumes"), "manga", "volumes IS NULL OR volumes >= 0")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("uq_manga_mal_id", table_name="manga")
        for column in ("volumes", "format", "mal_id"):
            op.execute(f"ALTER TABLE manga DROP COLUMN {column}")
        return
    op.drop_constraint(op.f("ck_manga_volumes"), "manga", type_="check")
    op.drop_constraint(op.f("ck_manga_format"), "manga", type_="check")
    op.drop_constraint(op.f("uq_manga_mal_id"), "manga", type_="unique")
    for column in ("volumes", "format", "mal_id"):
        op.drop_column("manga", column)
