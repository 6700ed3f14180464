"""reading entries: library, progress and ratings become one row per user x series

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 18:30:00

Every library, progress and rating row lands in ``reading_entries``; none is lost:
- status: the library's where it has one, else the progress row's, else
  ``plan_to_read`` (a score alone says nothing about reading);
- chapter, device and version from progress (versions kept, so TCP catch-up cursors
  stay valid); an entry with no progress row takes the user's next versions, and
  ``users.progress_seq`` moves past them;
- score from ratings (the series' average_rating is over the same scores: unchanged);
- added_at is the earliest and updated_at the latest timestamp of the merged rows.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'reading', 'completed', 'plan_to_read', 'on_hold', 'dropped'"


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def _manga_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["manga_id"], ["manga.id"], name=op.f(f"fk_{table}_manga_id_manga"), ondelete="CASCADE"
    )


def _keys(table: str) -> list[sa.Column[Any] | sa.Constraint]:
    return [
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("manga_id", sa.Integer(), nullable=False),
        _user_fk(table),
        _manga_fk(table),
        sa.PrimaryKeyConstraint("user_id", "manga_id", name=op.f(f"pk_{table}")),
    ]


def _extremum(sql_name: str, *values: str) -> str:
    """The least/greatest non-null of ``values`` (SQLite's scalar MIN/MAX return NULL
    when any argument is NULL, so each argument falls back on the others)."""
    args = [f"COALESCE({', '.join([v, *[o for o in values if o != v]])})" for v in values]
    return f"{sql_name}({', '.join(args)})"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "reading_entries",
        *_keys("reading_entries"),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("chapter", sa.Numeric(precision=10, scale=2, asdecimal=False), nullable=False),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("started_on", sa.Date(), nullable=True),
        sa.Column("finished_on", sa.Date(), nullable=True),
        sa.Column("rereads", sa.Integer(), nullable=False),
        sa.Column("rereading", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device", sa.String(length=100), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_reading_entries_status")),
        sa.CheckConstraint("chapter >= 0", name=op.f("ck_reading_entries_chapter")),
        sa.CheckConstraint("volume >= 0", name=op.f("ck_reading_entries_volume")),
        sa.CheckConstraint(
            "score IS NULL OR score BETWEEN 1 AND 10", name=op.f("ck_reading_entries_score")
        ),
        sa.CheckConstraint("rereads >= 0", name=op.f("ck_reading_entries_rereads")),
    )
    for name, columns in (
        ("ix_reading_entries_user_version", ["user_id", "version"]),
        ("ix_reading_entries_user_updated", ["user_id", "updated_at"]),
        ("ix_reading_entries_user_added", ["user_id", "added_at"]),
        ("ix_reading_entries_user_score", ["user_id", "score"]),
        ("ix_reading_entries_user_chapter", ["user_id", "chapter"]),
        ("ix_reading_entries_user_status", ["user_id", "status"]),
        ("ix_reading_entries_manga", ["manga_id"]),
    ):
        op.create_index(name, "reading_entries", columns)

    least, greatest = ("MIN", "MAX") if sqlite else ("LEAST", "GREATEST")
    stamps = ("l.added_at", "p.updated_at", "r.created_at")
    changed = ("l.updated_at", "p.updated_at", "r.updated_at")
    op.execute(
        f"""
        INSERT INTO reading_entries (user_id, manga_id, status, chapter, volume, score,
            started_on, finished_on, rereads, rereading, notes, added_at, updated_at,
            device, version)
        SELECT k.user_id, k.manga_id,
            COALESCE(l.status, p.status, 'plan_to_read'),
            COALESCE(p.chapter, 0), 0, r.score, NULL, NULL, 0, false, '',
            {_extremum(least, *stamps)},
            {_extremum(greatest, *changed)},
            p.device,
            CASE WHEN p.version IS NOT NULL THEN p.version
                 ELSE u.progress_seq + ROW_NUMBER() OVER (
                     PARTITION BY k.user_id, p.version IS NULL ORDER BY k.manga_id)
            END
        FROM (
            SELECT user_id, manga_id FROM library_entries
            UNION SELECT user_id, manga_id FROM progress
            UNION SELECT user_id, manga_id FROM ratings
        ) AS k
        JOIN users u ON u.id = k.user_id
        LEFT JOIN library_entries l ON l.user_id = k.user_id AND l.manga_id = k.manga_id
        LEFT JOIN progress p ON p.user_id = k.user_id AND p.manga_id = k.manga_id
        LEFT JOIN ratings r ON r.user_id = k.user_id AND r.manga_id = k.manga_id
        """
    )
    # The versions just handed out are taken: the next write goes above them.
    op.execute(
        f"""
        UPDATE users SET progress_seq = {greatest}(progress_seq, (
            SELECT COALESCE(MAX(e.version), 0) FROM reading_entries e WHERE e.user_id = users.id
        ))
        """
    )
    for table in ("ratings", "progress", "library_entries"):
        op.drop_table(table)


def downgrade() -> None:
    op.create_table(
        "library_entries",
        *_keys("library_entries"),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_library_entries_status")),
    )
    op.create_index("ix_library_manga", "library_entries", ["manga_id"])
    op.create_index("ix_library_user_added", "library_entries", ["user_id", "added_at"])
    op.create_table(
        "progress",
        *_keys("progress"),
        sa.Column("chapter", sa.Numeric(precision=10, scale=2, asdecimal=False), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("device", sa.String(length=100), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_progress_status")),
        sa.CheckConstraint("chapter >= 0", name=op.f("ck_progress_chapter")),
    )
    op.create_index("ix_progress_manga", "progress", ["manga_id"])
    op.create_index("ix_progress_user_version", "progress", ["user_id", "version"])
    op.create_table(
        "ratings",
        *_keys("ratings"),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 10", name=op.f("ck_ratings_score")),
    )
    op.create_index("ix_ratings_manga", "ratings", ["manga_id"])
    op.execute(
        "INSERT INTO library_entries (user_id, manga_id, status, added_at, updated_at) "
        "SELECT user_id, manga_id, status, added_at, updated_at FROM reading_entries"
    )
    op.execute(
        "INSERT INTO progress (user_id, manga_id, chapter, status, device, version, updated_at) "
        "SELECT user_id, manga_id, chapter, status, device, version, updated_at "
        "FROM reading_entries"
    )
    op.execute(
        "INSERT INTO ratings (user_id, manga_id, score, created_at, updated_at) "
        "SELECT user_id, manga_id, score, added_at, updated_at FROM reading_entries "
        "WHERE score IS NOT NULL"
    )
    op.drop_table("reading_entries")
