"""Migration 0003 on a database filled at revision 0002: library, progress and ratings
rows all land in reading_entries, none lost, versions kept."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from mangahub.storage.database import Database, alembic_config
from mangahub.storage.models import ReadingEntry
from mangahub.storage.types import UTCDateTime

T0 = datetime(2026, 1, 1, tzinfo=UTC)

users = sa.table(
    "users",
    sa.column("id", sa.Uuid),
    sa.column("username", sa.String),
    sa.column("email", sa.String),
    sa.column("password_hash", sa.String),
    sa.column("role", sa.String),
    sa.column("progress_seq", sa.BigInteger),
    sa.column("created_at", UTCDateTime),
    sa.column("updated_at", UTCDateTime),
)
manga = sa.table(
    "manga",
    sa.column("id", sa.Integer),
    sa.column("slug", sa.String),
    sa.column("title", sa.String),
    sa.column("alt_titles", sa.JSON),
    sa.column("authors", sa.JSON),
    sa.column("status", sa.String),
    sa.column("description", sa.String),
    sa.column("average_rating", sa.Float),
    sa.column("rating_count", sa.Integer),
    sa.column("popularity", sa.Integer),
    sa.column("search_text", sa.String),
    sa.column("created_at", UTCDateTime),
    sa.column("updated_at", UTCDateTime),
)
library = sa.table(
    "library_entries",
    sa.column("user_id", sa.Uuid),
    sa.column("manga_id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("added_at", UTCDateTime),
    sa.column("updated_at", UTCDateTime),
)
progress = sa.table(
    "progress",
    sa.column("user_id", sa.Uuid),
    sa.column("manga_id", sa.Integer),
    sa.column("chapter", sa.Numeric(10, 2, asdecimal=False)),
    sa.column("status", sa.String),
    sa.column("device", sa.String),
    sa.column("version", sa.BigInteger),
    sa.column("updated_at", UTCDateTime),
)
ratings = sa.table(
    "ratings",
    sa.column("user_id", sa.Uuid),
    sa.column("manga_id", sa.Integer),
    sa.column("score", sa.Integer),
    sa.column("created_at", UTCDateTime),
    sa.column("updated_at", UTCDateTime),
)

ALICE, BOB, CAROL = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[Database]:
    """A fresh, empty database of this run's backend."""
    database = Database(fresh_database_url)
    try:
        yield database
    finally:
        await database.close()


async def _upgrade(db: Database, revision: str) -> None:
    def run(conn: Connection) -> None:
        command.upgrade(alembic_config(conn), revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(run)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def _fill_0002(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            users.insert(),
            [
                {
                    "id": uid,
                    "username": name,
                    "email": f"{name}@example.com",
                    "password_hash": "x",
                    "role": "user",
                    "progress_seq": seq,
                    "created_at": T0,
                    "updated_at": T0,
                }
                for uid, name, seq in ((ALICE, "alice", 5), (BOB, "bob", 0), (CAROL, "carol", 2))
            ],
        )
        await conn.execute(
            manga.insert(),
            [
                {
                    "id": i,
                    "slug": f"series-{i}",
                    "title": f"Series {i}",
                    "alt_titles": [],
                    "authors": [],
                    "status": "ongoing",
                    "description": "",
                    "average_rating": 7.0 if i == 1 else None,
                    "rating_count": 2 if i == 1 else 0,
                    "popularity": 0,
                    "search_text": f"Series {i}",
                    "created_at": T0,
                    "updated_at": T0,
                }
                for i in (1, 2, 3, 4)
            ],
        )
        await conn.execute(
            library.insert(),
            [
                # Alice: on hold in the library while her progress row says "reading".
                {"user_id": ALICE, "manga_id": 1, "status": "on_hold"}
                | {"added_at": _at(10), "updated_at": _at(50)},
                {"user_id": ALICE, "manga_id": 4, "status": "reading"}
                | {"added_at": _at(5), "updated_at": _at(6)},
                {"user_id": BOB, "manga_id": 1, "status": "dropped"}
                | {"added_at": _at(1), "updated_at": _at(2)},
            ],
        )
        await conn.execute(
            progress.insert(),
            [
                {"user_id": ALICE, "manga_id": 1, "chapter": 12.5, "status": "reading"}
                | {"device": "laptop", "version": 3, "updated_at": _at(40)},
                {"user_id": ALICE, "manga_id": 2, "chapter": 20, "status": "completed"}
                | {"device": None, "version": 5, "updated_at": _at(30)},
                {"user_id": CAROL, "manga_id": 2, "chapter": 1, "status": "reading"}
                | {"device": "phone", "version": 2, "updated_at": _at(3)},
            ],
        )
        await conn.execute(
            ratings.insert(),
            [
                {"user_id": ALICE, "manga_id": 1, "score": 8}
                | {"created_at": _at(7), "updated_at": _at(60)},
                {"user_id": ALICE, "manga_id": 3, "score": 6}
                | {"created_at": _at(20), "updated_at": _at(21)},
                {"user_id": BOB, "manga_id": 1, "score": 6}
                | {"created_at": _at(8), "updated_at": _at(9)},
            ],
        )


async def test_upgrade_merges_every_row(db: Database) -> None:
    await _upgrade(db, "0002")
    await _fill_0002(db)
    await _upgrade(db, "head")

    async with db.session() as s:
        rows = (await s.scalars(sa.select(ReadingEntry))).all()
        entries = {(e.user_id, e.manga_id): e for e in rows}
        seqs = dict((await s.execute(sa.select(users.c.id, users.c.progress_seq))).all())
        average = (
            await s.execute(
                sa.select(manga.c.average_rating, manga.c.rating_count).where(manga.c.id == 1)
            )
        ).one()
        tables = await s.run_sync(lambda sync: sa.inspect(sync.connection()).get_table_names())

    assert set(entries) == {
        (ALICE, 1),
        (ALICE, 2),
        (ALICE, 3),
        (ALICE, 4),
        (BOB, 1),
        (CAROL, 2),
    }
    merged = entries[(ALICE, 1)]
    # The library's status wins; chapter, device and version come from progress.
    assert (merged.status, merged.chapter, merged.device, merged.version) == (
        "on_hold",
        12.5,
        "laptop",
        3,
    )
    assert merged.score == 8
    assert (merged.added_at, merged.updated_at) == (_at(7), _at(60))
    assert (merged.rereads, merged.rereading, merged.notes, merged.volume) == (0, False, "", 0)
    assert merged.started_on is None and merged.finished_on is None

    progress_only = entries[(ALICE, 2)]
    assert (progress_only.status, progress_only.chapter, progress_only.version) == (
        "completed",
        20,
        5,
    )
    assert progress_only.score is None

    rating_only = entries[(ALICE, 3)]
    assert (rating_only.status, rating_only.chapter, rating_only.score) == ("plan_to_read", 0, 6)
    library_only = entries[(ALICE, 4)]
    assert (library_only.status, library_only.chapter) == ("reading", 0)
    assert library_only.added_at == _at(5)
    # Entries that had no progress row take fresh versions above the user's counter.
    assert {rating_only.version, library_only.version} == {6, 7}
    assert seqs[ALICE] == 7

    bob = entries[(BOB, 1)]
    assert (bob.status, bob.score, bob.version) == ("dropped", 6, 1)
    assert seqs[BOB] == 1
    carol = entries[(CAROL, 2)]
    assert (carol.status, carol.chapter, carol.device, carol.version) == ("reading", 1, "phone", 2)
    assert seqs[CAROL] == 2

    # Scores are the same set, so the stored average still holds.
    assert tuple(average) == (7.0, 2)
    assert "reading_entries" in tables
    assert not {"library_entries", "progress", "ratings"} & set(tables)


async def test_downgrade_splits_entries_back(db: Database) -> None:
    await _upgrade(db, "0002")
    await _fill_0002(db)
    await _upgrade(db, "head")

    def down(conn: Connection) -> None:
        command.downgrade(alembic_config(conn), "0002")

    async with db.engine.begin() as conn:
        await conn.run_sync(down)
        scores = (await conn.execute(sa.select(ratings.c.user_id, ratings.c.score))).all()
        kept = (await conn.execute(sa.select(sa.func.count()).select_from(library))).scalar()
    assert sorted(score for _, score in scores) == [6, 6, 8]
    assert kept == 6
