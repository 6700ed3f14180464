"""catalog upgrades: themes, author roles, admin edits, tombstones

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Plain ALTER TABLE: a batch rebuild of `manga` would drop the FTS5 triggers.
        op.execute("ALTER TABLE manga ADD COLUMN themes JSON DEFAULT '[]' NOT NULL")
        op.execute("ALTER TABLE manga ADD COLUMN author_roles JSON DEFAULT '[]' NOT NULL")
    else:
        for column in ("themes", "author_roles"):
            op.add_column(
                "manga",
                sa.Column(
                    column,
                    postgresql.JSONB(astext_type=sa.Text()),
                    server_default="[]",
                    nullable=False,
                ),
            )
    op.create_table(
        "catalog_edits",
        sa.Column("manga_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=30), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["manga_id"],
            ["manga.id"],
            name=op.f("fk_catalog_edits_manga_id_manga"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("manga_id", "field", name=op.f("pk_catalog_edits")),
    )
    op.create_table(
        "catalog_tombstones",
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("source_id", sa.String(length=36), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id", name=op.f("pk_catalog_tombstones")),
    )


def downgrade() -> None:
    op.drop_table("catalog_tombstones")
    op.drop_table("catalog_edits")
    if op.get_bind().dialect.name == "sqlite":
        for column in ("author_roles", "themes"):
            op.execute(f"ALTER TABLE manga DROP COLUMN {column}")
        return
    for column in ("author_roles", "themes"):
        op.drop_column("manga", column)
