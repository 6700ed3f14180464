"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29 02:45:42.387101
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "genres",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("slug", sa.String(length=60), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_genres")),
        sa.UniqueConstraint("name", name=op.f("uq_genres_name")),
        sa.UniqueConstraint("slug", name=op.f("uq_genres_slug")),
    )
    op.create_table(
        "manga",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column(
            "alt_titles",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "authors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total_chapters", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("cover_url", sa.String(length=1000), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("mangadex_id", sa.String(length=36), nullable=True),
        sa.Column("anilist_id", sa.Integer(), nullable=True),
        sa.Column("average_rating", sa.Float(), nullable=True),
        sa.Column("rating_count", sa.Integer(), nullable=False),
        sa.Column("popularity", sa.Integer(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_chapter_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('ongoing', 'completed', 'hiatus', 'cancelled')",
            name=op.f("ck_manga_status"),
        ),
        sa.CheckConstraint(
            "total_chapters IS NULL OR total_chapters >= 0",
            name=op.f("ck_manga_total_chapters"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manga")),
        sa.UniqueConstraint("anilist_id", name=op.f("uq_manga_anilist_id")),
        sa.UniqueConstraint("mangadex_id", name=op.f("uq_manga_mangadex_id")),
        sa.UniqueConstraint("slug", name=op.f("uq_manga_slug")),
    )
    with op.batch_alter_table("manga", schema=None) as batch_op:
        batch_op.create_index("ix_manga_average_rating", ["average_rating"], unique=False)
        batch_op.create_index(
            "ix_manga_last_chapter_check", ["last_chapter_check_at"], unique=False
        )
        batch_op.create_index("ix_manga_popularity", ["popularity"], unique=False)
        batch_op.create_index("ix_manga_status", ["status"], unique=False)
        batch_op.create_index("ix_manga_title", ["title"], unique=False)
        batch_op.create_index("ix_manga_total_chapters", ["total_chapters"], unique=False)
        batch_op.create_index("ix_manga_updated_at", ["updated_at"], unique=False)

    op.create_table(
        "sync_state",
        sa.Column("sync_type", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("cursor", sa.String(length=500), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("sync_type", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=50), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("progress_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('user', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    # Usernames are unique regardless of case ("Bob" and "bob" are one account).
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.create_table(
        "chapters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("manga_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Numeric(precision=10, scale=2, asdecimal=False), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("volume", sa.String(length=20), nullable=True),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mangadex_id", sa.String(length=36), nullable=True),
        sa.Column("scanlation_group", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("number >= 0", name=op.f("ck_chapters_number")),
        sa.ForeignKeyConstraint(
            ["manga_id"],
            ["manga.id"],
            name=op.f("fk_chapters_manga_id_manga"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chapters")),
        sa.UniqueConstraint("manga_id", "number", "language", name="uq_chapters_manga_number_lang"),
        sa.UniqueConstraint("mangadex_id", name=op.f("uq_chapters_mangadex_id")),
    )
    with op.batch_alter_table("chapters", schema=None) as batch_op:
        batch_op.create_index("ix_chapters_manga_number", ["manga_id", "number"], unique=False)

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "length(content) BETWEEN 1 AND 2000", name=op.f("ck_chat_messages_content")
        ),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["manga.id"],
            name=op.f("fk_chat_messages_room_id_manga"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_chat_messages_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.create_index("ix_chat_room_id", ["room_id", "id"], unique=False)

    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("manga_id", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("length(content) BETWEEN 1 AND 2000", name=op.f("ck_comments_content")),
        sa.ForeignKeyConstraint(
            ["manga_id"],
            ["manga.id"],
            name=op.f("fk_comments_manga_id_manga"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_comments_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
    )
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.create_index("ix_comments_manga_created", ["manga_id", "created_at"], unique=False)
        batch_op.create_index("ix_comments_user", ["user_id"], unique=False)

    op.create_table(
        "library_entries",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("manga_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('reading', 'completed', 'plan_to_read', 'on_hold', 'dropped')",
            name=op.f("ck_library_entries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["manga_id"],
            ["manga.id"],
            name=op.f("fk_library_entries_manga_id_manga"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_library_entries_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "manga_id", name=op.f("pk_library_entries")),
    )
    with op.batch_alter_table("library_entries", schema=None) as batch_op:
        batch_op.create_index("ix_library_manga", ["manga_id"], unique=False)
        batch_op.create_index("ix_library_user_added", ["user_id", "added_at"], unique=False)

    op.create_table(
        "manga_genres",
        sa.Column("manga_id", sa.Integer(), nullable=False),
        sa.Column("genre_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["genre_id"],
            ["genres.id"],
            name=op.f("fk_manga_genres_genre_id_genres"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["manga_id"],
            ["manga.id"],
            name=op.f("fk_manga_genres_manga_id_manga"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("manga_id", "genre_id", name=op.f("pk_manga_genres")),
    )
    with op.batch_alter_table("manga_genres", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manga_genres_genre_id"), ["genre_id"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("manga_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("read", sa.Boolean(), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('new_manga', 'new_chapter', 'manga_update', 'system')",
            name=op.f("ck_notifications_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["manga_id"],
            ["manga.id"],
            name=op.f("fk_notifications_manga_id_manga"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_user_created", ["user_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_notifications_user_undelivered", ["user_id", "delivered"], unique=False
        )
        batch_op.create_index("ix_notifications_user_unread", ["user_id", "read"], unique=False)

    op.create_table(
        "progress",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("manga_id", sa.Integer(), nullable=False),
        sa.Column(
            "chapter",
            sa.Numeric(precision=10, scale=2, asdecimal=False),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("device", sa.String(length=100), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('reading', 'completed', 'plan_to_read', 'on_hold', 'dropped')",
            name=op.f("ck_progress_status"),
        ),
        sa.CheckConstraint("chapter >= 0", name=op.f("ck_progress_chapter")),
        sa.ForeignKeyConstraint(
            ["manga_id"],
            ["manga.id"],
            name=op.f("fk_progress_manga_id_manga"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_progress_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "manga_id", name=op.f("pk_progress")),
    )
    with op.batch_alter_table("progress", schema=None) as batch_op:
        batch_op.create_index("ix_progress_manga", ["manga_id"], unique=False)
        batch_op.create_index("ix_progress_user_version", ["user_id", "version"], unique=False)

    op.create_table(
        "ratings",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("manga_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 10", name=op.f("ck_ratings_score")),
        sa.ForeignKeyConstraint(
            ["manga_id"],
            ["manga.id"],
            name=op.f("fk_ratings_manga_id_manga"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ratings_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "manga_id", name=op.f("pk_ratings")),
    )
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.create_index("ix_ratings_manga", ["manga_id"], unique=False)

    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_refresh_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_refresh_tokens_family", ["family_id"], unique=False)
        batch_op.create_index("ix_refresh_tokens_user", ["user_id"], unique=False)

    _create_search_index()


def _create_search_index() -> None:
    """Ranked full-text search over title (weighted high) and the rest of search_text."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE manga_fts USING fts5("
            "title, search_text, content='manga', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER manga_fts_ai AFTER INSERT ON manga BEGIN "
            "INSERT INTO manga_fts(rowid, title, search_text) "
            "VALUES (new.id, new.title, new.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER manga_fts_ad AFTER DELETE ON manga BEGIN "
            "INSERT INTO manga_fts(manga_fts, rowid, title, search_text) "
            "VALUES ('delete', old.id, old.title, old.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER manga_fts_au AFTER UPDATE OF title, search_text ON manga BEGIN "
            "INSERT INTO manga_fts(manga_fts, rowid, title, search_text) "
            "VALUES ('delete', old.id, old.title, old.search_text); "
            "INSERT INTO manga_fts(rowid, title, search_text) "
            "VALUES (new.id, new.title, new.search_text); END"
        )
    else:
        op.execute(
            "ALTER TABLE manga ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
            "setweight(to_tsvector('simple', coalesce(title, '')), 'A') || "
            "setweight(to_tsvector('simple', coalesce(search_text, '')), 'B')) STORED"
        )
        op.execute("CREATE INDEX ix_manga_search_vector ON manga USING gin (search_vector)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("manga_fts_ai", "manga_fts_ad", "manga_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS manga_fts")
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_refresh_tokens_user")
        batch_op.drop_index("ix_refresh_tokens_family")

    op.drop_table("refresh_tokens")
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.drop_index("ix_ratings_manga")

    op.drop_table("ratings")
    with op.batch_alter_table("progress", schema=None) as batch_op:
        batch_op.drop_index("ix_progress_user_version")
        batch_op.drop_index("ix_progress_manga")

    op.drop_table("progress")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_user_unread")
        batch_op.drop_index("ix_notifications_user_undelivered")
        batch_op.drop_index("ix_notifications_user_created")

    op.drop_table("notifications")
    with op.batch_alter_table("manga_genres", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manga_genres_genre_id"))

    op.drop_table("manga_genres")
    with op.batch_alter_table("library_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_library_user_added")
        batch_op.drop_index("ix_library_manga")

    op.drop_table("library_entries")
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_index("ix_comments_user")
        batch_op.drop_index("ix_comments_manga_created")

    op.drop_table("comments")
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_room_id")

    op.drop_table("chat_messages")
    with op.batch_alter_table("chapters", schema=None) as batch_op:
        batch_op.drop_index("ix_chapters_manga_number")

    op.drop_table("chapters")
    op.drop_table("users")
    op.drop_table("sync_state")
    with op.batch_alter_table("manga", schema=None) as batch_op:
        batch_op.drop_index("ix_manga_updated_at")
        batch_op.drop_index("ix_manga_total_chapters")
        batch_op.drop_index("ix_manga_title")
        batch_op.drop_index("ix_manga_status")
        batch_op.drop_index("ix_manga_popularity")
        batch_op.drop_index("ix_manga_last_chapter_check")
        batch_op.drop_index("ix_manga_average_rating")

    op.drop_table("manga")
    op.drop_table("genres")
