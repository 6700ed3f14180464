"""List import: a 10,000-entry MAL export built from real titles, imported into a
10,000-series catalog on SQLite and on PostgreSQL.

The catalog is ``bench/build_catalog.py``'s (real AniList, MAL and MangaDex series,
padded with derived editions). The list names every catalog series once, as a
MyAnimeList export would: MAL id where the public AniList↔MAL map knows one (about
a tenth), otherwise title only; statuses, chapters, scores and dates are drawn from a
fixed seed. The file is gzipped, as MAL serves it.

Per backend, in the same run:

* baseline 1, parse only: ``lists.parse_list`` on the same bytes;
* baseline 2, bare executemany: the same 10,000 rows inserted into
  ``reading_entries`` with one plain Core INSERT executemany in one transaction
  (no parsing, matching, versions, averages or published events);
* the import (``ListImportService.import_file``, what ``POST /api/library/import``
  runs after reading the body): first for a reader whose series must be matched by
  title (and learn their MAL ids), then for a second reader (now matched by id),
  then again for the second reader (every entry updated).

Entries/s are wall time of one call. Peak memory is tracemalloc's peak of Python
allocations during a separate run of the same import (tracemalloc slows it down, so
its time is not used). The service runs in this process, without HTTP.

    .venv/bin/python bench/import_bench.py [--quick] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import random
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.build_catalog import FIXTURES, MAL_MAP_JSON, build, load_mal_to_anilist  # noqa: E402
from bench.common import ratio  # noqa: E402

from mangahub.app import build_runtime  # noqa: E402
from mangahub.catalog.records import SeriesRecord  # noqa: E402
from mangahub.config import Settings  # noqa: E402
from mangahub.lists import parse_list  # noqa: E402
from mangahub.services.list_import import ListImportService  # noqa: E402
from mangahub.storage.models import Manga, ReadingEntry, User  # noqa: E402
from mangahub.storage.types import utcnow  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
STATUSES = ["Reading", "Completed", "On-Hold", "Dropped", "Plan to Read"]


def mal_list(records: list[SeriesRecord], mal_of: dict[int, int], seed: int = 13) -> bytes:
    rng = random.Random(seed)
    out = [
        '<?xml version="1.0" encoding="UTF-8" ?>\n<myanimelist>\n<myinfo>'
        "<user_export_type>2</user_export_type></myinfo>\n"
    ]
    start = date(2015, 1, 1)
    for r in records:
        total = r.total_chapters or 0
        chapter = rng.randint(0, total) if total else rng.randint(0, 300)
        started = start + timedelta(days=rng.randint(0, 3000))
        finished = started + timedelta(days=rng.randint(1, 400)) if rng.random() < 0.3 else None
        title = r.title.replace("]]>", "]]]]><![CDATA[>")
        out.append(
            "<manga>"
            f"<manga_mangadb_id>{mal_of.get(r.anilist_id or 0, 0)}</manga_mangadb_id>"
            f"<manga_title><![CDATA[{title}]]></manga_title>"
            f"<manga_volumes>0</manga_volumes><manga_chapters>{total}</manga_chapters>"
            f"<my_read_volumes>{rng.randint(0, 20)}</my_read_volumes>"
            f"<my_read_chapters>{chapter}</my_read_chapters>"
            f"<my_start_date>{started}</my_start_date>"
            f"<my_finish_date>{finished or '0000-00-00'}</my_finish_date>"
            f"<my_score>{rng.choice([0, 0, 0, 5, 6, 7, 8, 9, 10])}</my_score>"
            f"<my_status>{rng.choice(STATUSES)}</my_status>"
            "<my_comments><![CDATA[]]></my_comments>"
            f"<my_times_read>{rng.randint(0, 2)}</my_times_read>"
            "<my_rereading>NO</my_rereading><update_on_import>1</update_on_import>"
            "</manga>\n"
        )
    out.append("</myanimelist>\n")
    return gzip.compress("".join(out).encode())


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = await call()
    return time.perf_counter() - began, result


async def peak_memory(call: Callable[[], Awaitable[Any]]) -> int:
    tracemalloc.start()
    try:
        await call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def make_user(runtime: Any, name: str) -> uuid.UUID:
    user = User(
        username=f"{name}_{uuid.uuid4().hex[:8]}",
        email=f"{uuid.uuid4().hex[:12]}@example.com",
        password_hash="x",
    )
    async with runtime.db.session() as s:
        s.add(user)
    return user.id


async def bare_executemany(runtime: Any, data: bytes) -> tuple[float, int]:
    """The same rows, already resolved, in one plain INSERT executemany."""
    entries = parse_list(data).entries
    async with runtime.db.session() as s:
        ids = {t: i for i, t in (await s.execute(select(Manga.id, Manga.title))).all()}
    user_id = await make_user(runtime, "bare")
    now = utcnow()
    rows = [
        {
            "user_id": user_id,
            "manga_id": ids[e.title],
            "status": e.status.value,
            "chapter": e.chapter,
            "volume": e.volume or 0,
            "score": e.score,
            "started_on": e.started_on,
            "finished_on": e.finished_on,
            "rereads": e.rereads,
            "rereading": e.rereading,
            "notes": "",
            "added_at": now,
            "updated_at": now,
            "device": "bench",
            "version": n,
        }
        for n, e in enumerate(entries, 1)
        if e.title in ids
    ]

    async def insert_all() -> None:
        async with runtime.db.session() as s:
            conn = await s.connection()
            await conn.execute(insert(ReadingEntry.__table__), rows)

    seconds, _ = await timed(insert_all)
    return seconds, len(rows)


async def run_backend(
    name: str, url: str | None, data_dir: Path, records: list[SeriesRecord], data: bytes
) -> dict[str, Any]:
    settings = Settings(  # type: ignore[call-arg]
        data_dir=data_dir,
        database_url=url,
        admin_password="bench-admin-password",
        seed_catalog=False,
        mangadex_url="",
        anilist_url="",
        bcrypt_rounds=10,
    )
    async with build_runtime(settings) as runtime:
        began = time.perf_counter()
        await runtime.catalog.import_series(records)
        catalog_s = time.perf_counter() - began
        service = ListImportService(runtime.db, runtime.bus)
        n = len(records)
        parse_s, parsed = await timed(lambda: asyncio.to_thread(parse_list, data))
        assert len(parsed.entries) == n
        parse_peak = await peak_memory(lambda: asyncio.to_thread(parse_list, data))
        bare_s, bare_rows = await bare_executemany(runtime, data)
        first_user = await make_user(runtime, "first")
        first_s, first = await timed(lambda: service.import_file(first_user, data))
        second_user = await make_user(runtime, "second")
        second_s, second = await timed(lambda: service.import_file(second_user, data))
        again_s, again = await timed(lambda: service.import_file(second_user, data))
        third_user = await make_user(runtime, "third")
        import_peak = await peak_memory(lambda: service.import_file(third_user, data))
    assert first.imported + len(first.skipped) == n, first
    assert second.imported == first.imported and again.updated == second.imported, (
        first,
        second,
        again,
    )
    return {
        "backend": name,
        "entries": n,
        "catalog_s": catalog_s,
        "parse_s": parse_s,
        "parse_peak": parse_peak,
        "bare_s": bare_s,
        "bare_rows": bare_rows,
        "first_s": first_s,
        "first_created": first.created_series,
        "first_skipped": len(first.skipped),
        "second_s": second_s,
        "again_s": again_s,
        "import_peak": import_peak,
    }


async def pg_database() -> tuple[str, str]:
    name = f"mangahub_import_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_pg(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def report(r: dict[str, Any]) -> None:
    n = r["entries"]
    mib = 1024 * 1024

    def rate(seconds: float) -> str:
        return f"{n / seconds:,.0f} entries/s ({seconds:.2f} s)"

    print(
        f"\n== {r['backend']}: {n:,} entries, catalog of {n:,} series "
        f"(loaded in {r['catalog_s']:.1f} s)"
    )
    print(
        f"parse only (baseline 1)          {rate(r['parse_s'])}, "
        f"peak {r['parse_peak'] / mib:.1f} MiB"
    )
    print(
        f"bare executemany (baseline 2)    {r['bare_rows'] / r['bare_s']:,.0f} rows/s "
        f"({r['bare_s']:.2f} s, {r['bare_rows']:,} rows)"
    )
    print(
        f"import, matched by title         {rate(r['first_s'])}; "
        f"{r['first_created']} series created, {r['first_skipped']} skipped"
    )
    print(f"import, matched by id            {rate(r['second_s'])}")
    print(f"import again (all updated)       {rate(r['again_s'])}")
    print(f"import peak memory (tracemalloc) {r['import_peak'] / mib:.1f} MiB")
    print(
        f"ratios: import by id ÷ parse only = {ratio(r['second_s'], r['parse_s'])}, "
        f"import by id ÷ bare executemany = {ratio(r['second_s'], r['bare_s'])}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 entries instead of 10,000")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    size = 2_000 if args.quick else 10_000
    records, _ = build(FIXTURES, size)
    mal_of = {
        a: m for m, anilist in load_mal_to_anilist(FIXTURES / MAL_MAP_JSON).items() for a in anilist
    }
    data = mal_list(records, mal_of)
    with_mal = sum(1 for r in records if mal_of.get(r.anilist_id or 0))
    print(f"list file: {len(data):,} bytes gzipped, {with_mal:,} entries with a MAL id")
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                report(await run_backend("sqlite", None, Path(tmp), records, data))
            else:
                name, url = await pg_database()
                try:
                    report(await run_backend("postgres", url, Path(tmp), records, data))
                finally:
                    await drop_pg(name)


if __name__ == "__main__":
    asyncio.run(main())
