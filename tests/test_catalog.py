"""The catalog: bundled real data, ranked full-text search, filters, sorting,
pagination, details, chapters, admin changes, and bulk imports.

The catalog is shared by the whole test session, so series created here carry a
unique tag in their titles and totals are only compared before/after.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mangahub.app import Runtime
from mangahub.cache import MemoryCache
from mangahub.catalog.loader import load_bundled
from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaFormat, MangaStatus, SortBy
from mangahub.readmodels import publish_catalog_changed
from mangahub.services.catalog import CatalogService, genre_slug
from mangahub.storage.database import Database
from mangahub.storage.models import ChapterRow, Genre, Manga
from mangahub.storage.search import query_terms
from tests.conftest import MakeUser, UserSession
from tests.shapes import DETAIL_FIELDS

UNKNOWN_MANGA = 2_000_000_000


def tag() -> str:
    """A word no real series contains (letters first: one token for both engines)."""
    return "zq" + uuid.uuid4().hex[:12]


def titles(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["data"]]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


async def create(client: httpx.AsyncClient, admin: UserSession, **fields: Any) -> dict[str, Any]:
    body = {"title": f"Series {tag()}", "status": "ongoing"} | fields
    r = await client.post("/api/manga", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def genre_ids(client: httpx.AsyncClient, *names: str) -> list[int]:
    r = await client.get("/api/genres")
    assert r.status_code == 200
    by_name = {g["name"]: g["id"] for g in r.json()}
    return [by_name[name] for name in names]


async def fetch_all(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every row of a paginated listing, page by page."""
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        r = await client.get(path, params=params | {"page": page, "page_size": 100})
        assert r.status_code == 200, r.text
        body = r.json()
        rows.extend(body["data"])
        if len(rows) >= body["total"] or not body["data"]:
            return rows
        page += 1


# --- the bundled catalog ---------------------------------------------------------------


async def test_bundled_catalog_is_loaded(client: httpx.AsyncClient, runtime: Runtime) -> None:
    r = await client.get("/api/manga")
    assert r.status_code == 200
    assert r.json()["total"] >= 500
    bundled = load_bundled()
    assert len(bundled) > 4000
    async with runtime.db.session() as s:
        stored = set(
            (await s.scalars(select(Manga.mangadex_id).where(Manga.mangadex_id.isnot(None)))).all()
        )
        slugs = (await s.scalars(select(Manga.slug))).all()
    assert {r.mangadex_id for r in bundled if r.mangadex_id is not None} <= stored
    assert len(slugs) == len(set(slugs))
    # The two real series both titled "Wind Breaker" got distinct slugs.
    wind = await client.get("/api/manga", params={"q": "wind breaker"})
    slugs = sorted(m["slug"] for m in wind.json()["data"] if m["title"] == "Wind Breaker")
    assert slugs == ["wind-breaker", "wind-breaker-2"]


async def test_seeding_again_adds_nothing(runtime: Runtime) -> None:
    assert await runtime.catalog.seed_bundled() == 0


async def test_bundled_series_keep_their_real_data(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/manga", params={"q": "one piece"})
    one_piece = next(m for m in r.json()["data"] if m["title"] == "ONE PIECE")
    details = (await client.get(f"/api/manga/{one_piece['id']}")).json()
    assert details["mangadex_id"] == "a1c7c817-4e59-43b7-9365-09675a149a6f"
    assert details["authors"] == ["Oda Eiichiro"]
    assert details["status"] == "ongoing"
    assert {"Action", "Adventure", "Comedy"} <= set(details["genres"])
    assert details["cover_url"].startswith("https://mangadex.org/covers/")
    # The scrape writes 0 when MangaDex does not know the count: stored as unknown.
    assert details["total_chapters"] is None
    assert DETAIL_FIELDS <= set(details)


# --- search ----------------------------------------------------------------------------


def title_words(title: str) -> list[str]:
    return re.findall(r"[^\W_]+", title.lower())


async def test_search_finds_real_series_title_matches_first(client: httpx.AsyncClient) -> None:
    found = titles(await client.get("/api/manga", params={"q": "one", "page_size": 100}))
    assert "ONE PIECE" in found and "One Punch-Man" in found
    in_title = [any(w.startswith("one") for w in title_words(t)) for t in found]
    assert in_title == sorted(in_title, reverse=True), found  # title hits, then the rest
    whole_word = [("one" in title_words(t)) for t in found]
    assert whole_word == sorted(whole_word, reverse=True), found  # "one" before "oneulman"


async def test_title_hits_rank_above_author_and_alt_title_hits(
    client: httpx.AsyncClient, admin: UserSession
) -> None:
    word = tag()
    by_author = await create(client, admin, title=f"Unrelated {tag()}", authors=[word])
    by_alt = await create(client, admin, title=f"Other {tag()}", alt_titles=[f"{word} alt"])
    by_title = await create(client, admin, title=f"The {word} Chronicles")
    r = await client.get("/api/manga", params={"q": word})
    ids = [m["id"] for m in r.json()["data"]]
    assert r.json()["total"] == 3
    assert ids[0] == by_title["id"]
    assert set(ids[1:]) == {by_author["id"], by_alt["id"]}


async def test_search_by_author_and_prefix(client: httpx.AsyncClient) -> None:
    for q in ("Oda Eiichiro", "oda", "EIICHI"):
        assert "ONE PIECE" in titles(await client.get("/api/manga", params={"q": q})), q


async def test_search_by_alt_title_and_genre_name(
    client: httpx.AsyncClient, admin: UserSession
) -> None:
    word = tag()
    (mecha,) = await genre_ids(client, "Mecha")
    created = await create(
        client, admin, alt_titles=[f"Koukaku {word}"], genre_ids=[mecha], authors=["Someone"]
    )
    assert titles(await client.get("/api/manga", params={"q": f"koukaku {word}"})) == [
        created["title"]
    ]
    # Genre names are searchable too: the tag narrows it down to our series.
    hits = await client.get("/api/manga", params={"q": f"mecha {created['title']}"})
    assert [m["id"] for m in hits.json()["data"]] == [created["id"]]


async def test_search_ignores_accents_and_case(client: httpx.AsyncClient) -> None:
    for q in ("pokemon special", "POKÉMON special", "Pokémon"):
        assert "Pokémon SPECIAL" in titles(await client.get("/api/manga", params={"q": q})), q


async def test_search_alias_for_original_clients(client: httpx.AsyncClient) -> None:
    plain = await client.get("/api/manga", params={"q": "one", "page_size": 50})
    alias = await client.get("/api/manga/search", params={"q": "one", "page_size": 50})
    assert alias.status_code == 200
    assert alias.json() == plain.json()


@pytest.mark.parametrize(
    "q",
    [
        "'; DROP TABLE manga; --",
        '"',
        '"unterminated',
        "*",
        "one*",
        "NEAR(",
        "NEAR(one piece, 2)",
        "a:*|b",
        "one & !piece",
        "%_",
        "title: one",
        "one OR piece",
        "one AND NOT piece",
        "(((",
        "\\",
        "-one",
        "^one",
        "{title}: one",
        "x" * 200,
        "漫画 ワンピース",
    ],
)
async def test_hostile_queries_never_fail(client: httpx.AsyncClient, q: str) -> None:
    for path in ("/api/manga", "/api/manga/search", "/api/manga/advanced-search"):
        r = await client.get(path, params={"q": q})
        assert r.status_code == 200, (path, q, r.text)
        assert isinstance(r.json()["data"], list)
    assert (await client.get("/api/manga")).json()["total"] >= 500  # the table survived


async def test_query_without_words_matches_nothing(client: httpx.AsyncClient) -> None:
    for q in ("%_", "*", '"', "&|!"):
        body = (await client.get("/api/manga", params={"q": q})).json()
        assert (body["data"], body["total"]) == ([], 0), q
    # A blank query is no query: the whole catalog.
    assert (await client.get("/api/manga", params={"q": "  "})).json()["total"] >= 500


async def test_too_long_query_is_a_validation_error(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/manga", params={"q": "x" * 201})
    error = assert_error(r, 422, "validation_error")
    assert error["details"][0]["field"].endswith("q")


def test_queries_become_plain_words() -> None:
    assert query_terms('"One" PIECE* a:*|b NEAR( %_ x_y') == [
        "one",
        "piece",
        "a",
        "b",
        "near",
        "x",
        "y",
    ]
    assert query_terms('%_ * " ( ) : & | ! -') == []
    assert query_terms("Pokémon  pokémon") == ["pokémon"]
    assert len(query_terms(" ".join(f"w{i}" for i in range(100)))) == 16


# --- filters ---------------------------------------------------------------------------


async def test_genre_filter_ignores_case(client: httpx.AsyncClient) -> None:
    totals = set()
    for name in ("Slice of Life", "slice of life", "SLICE OF LIFE", "slice-of-life"):
        body = (await client.get("/api/manga", params={"genre": name, "page_size": 100})).json()
        totals.add(body["total"])
        assert all("Slice of Life" in m["genres"] for m in body["data"])
    assert len(totals) == 1 and totals.pop() >= 284  # the bundled catalog alone has 284
    unknown = await client.get("/api/manga", params={"genre": "no such genre"})
    assert_error(unknown, 422, "validation_error")


async def test_status_filter_ignores_case(client: httpx.AsyncClient) -> None:
    totals = set()
    for value in ("completed", "Completed", "COMPLETED"):
        body = (await client.get("/api/manga", params={"status": value, "page_size": 100})).json()
        totals.add(body["total"])
        assert {m["status"] for m in body["data"]} == {"completed"}
    assert len(totals) == 1 and totals.pop() >= 230


async def test_invalid_status_is_a_validation_error(client: httpx.AsyncClient) -> None:
    for path in ("/api/manga", "/api/manga/advanced-search"):
        error = assert_error(
            await client.get(path, params={"status": "finished"}), 422, "validation_error"
        )
        assert error["details"][0]["field"].endswith("status")


async def test_filters_combine_with_search(client: httpx.AsyncClient) -> None:
    params = {"q": "one", "genre": "superhero", "status": "ongoing"}
    found = titles(await client.get("/api/manga", params=params))
    assert "One Punch-Man" in found and "ONE PIECE" not in found


# --- pagination ------------------------------------------------------------------------


async def test_pagination_limits_and_alias(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/manga", params={"page_size": 100})).status_code == 200
    for bad in ({"page_size": 101}, {"page_size": 0}, {"page": 0}, {"limit": 101}):
        assert_error(await client.get("/api/manga", params=bad), 422, "validation_error")
    body = (await client.get("/api/manga", params={"limit": 7})).json()
    assert (body["page"], body["page_size"], len(body["data"])) == (1, 7, 7)


async def test_pages_cover_the_results_once(client: httpx.AsyncClient) -> None:
    params: dict[str, str | int] = {"genre": "Sports", "page_size": 7}
    first = (await client.get("/api/manga", params=params)).json()
    total = first["total"]
    assert total >= 33
    seen: list[int] = []
    for page in range(1, (total + 6) // 7 + 1):
        body = (await client.get("/api/manga", params=params | {"page": page})).json()
        assert body["total"] == total and body["page"] == page
        seen.extend(m["id"] for m in body["data"])
    assert len(seen) == len(set(seen)) == total
    beyond = (await client.get("/api/manga", params=params | {"page": 1000})).json()
    assert (beyond["data"], beyond["total"], beyond["page"]) == ([], total, 1000)


async def test_default_order_is_popularity_then_id(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    rows = (await client.get("/api/manga", params={"page_size": 100})).json()["data"]
    keys = [(-m["popularity"], m["id"]) for m in rows]
    assert keys == sorted(keys)


# --- advanced search -------------------------------------------------------------------


async def sort_values(runtime: Runtime, ids: list[int], sort_by: SortBy) -> list[Any]:
    column = {
        SortBy.POPULARITY: Manga.popularity,
        SortBy.RATING: Manga.average_rating,
        SortBy.TITLE: Manga.title,
        SortBy.UPDATED: Manga.updated_at,
        SortBy.CHAPTERS: Manga.total_chapters,
    }[sort_by]
    async with runtime.db.session() as s:
        found = dict((await s.execute(select(Manga.id, column).where(Manga.id.in_(ids)))).all())
    return [found[i] for i in ids]


def assert_sorted(ids: list[int], values: list[Any], descending: bool, by_title: bool) -> None:
    """Adjacent rows are in order: NULLs last, equal keys by ascending id."""
    rows = list(zip(ids, values, strict=True))
    for (id_a, a), (id_b, b) in zip(rows, rows[1:], strict=False):
        if by_title:
            if not (a.isascii() and b.isascii()):
                continue  # case folding of other scripts differs between engines
            a, b = a.lower(), b.lower()
        if a is None or b is None:
            assert b is None, f"NULL before a value: {id_a}={a!r}, {id_b}={b!r}"
            if a is None:
                assert id_a < id_b
            continue
        if a == b:
            assert id_a < id_b, f"tie not broken by id: {id_a}, {id_b}"
        else:
            assert (a > b) if descending else (a < b), f"{id_a}={a!r} then {id_b}={b!r}"


@pytest.fixture(scope="module")
async def some_ratings(runtime: Runtime) -> None:
    """A few rated series of our own, so rating order has values and NULLs to sort."""
    added = []
    async with runtime.db.session() as s:
        for i, score in enumerate((7.5, 9.0, 7.5, 3.0, 8.25)):
            word = tag()
            added.append(
                Manga(
                    slug=f"rated-{word}",
                    title=f"Rated {i} {word}",
                    status="ongoing",
                    average_rating=score,
                    rating_count=1,
                    search_text="",
                )
            )
        s.add_all(added)
        await s.flush()
        ids = [manga.id for manga in added]
    # As every catalog writer does after its commit.
    await publish_catalog_changed(runtime.bus, *ids)


@pytest.mark.parametrize("order", ["asc", "desc", None])
@pytest.mark.parametrize("sort_by", list(SortBy))
async def test_advanced_search_sorts(
    client: httpx.AsyncClient,
    runtime: Runtime,
    some_ratings: None,
    sort_by: SortBy,
    order: str | None,
) -> None:
    params: dict[str, Any] = {"sort_by": sort_by.value, "page_size": 100}
    if order is not None:
        params["order"] = order
    ids: list[int] = []
    for page in (1, 2):  # two pages: the order also holds across the page boundary
        body = await client.get("/api/manga/advanced-search", params=params | {"page": page})
        assert body.status_code == 200, body.text
        ids.extend(m["id"] for m in body.json()["data"])
    expected_order = order or ("asc" if sort_by is SortBy.TITLE else "desc")
    assert body.json()["filters"]["order"] == expected_order
    assert body.json()["filters"]["sort_by"] == sort_by.value
    values = await sort_values(runtime, ids, sort_by)
    assert_sorted(ids, values, expected_order == "desc", sort_by is SortBy.TITLE)
    if sort_by in (SortBy.RATING, SortBy.CHAPTERS):
        assert values[0] is not None  # real values come first in either direction


async def test_advanced_search_requires_every_genre(client: httpx.AsyncClient) -> None:
    action = (await client.get("/api/manga", params={"genre": "Action"})).json()["total"]
    r = await client.get(
        "/api/manga/advanced-search", params={"genres": "action, COMEDY", "page_size": 100}
    )
    body = r.json()
    assert 0 < body["total"] < action
    assert all({"Action", "Comedy"} <= set(m["genres"]) for m in body["data"])
    three = await client.get(
        "/api/manga/advanced-search", params={"genres": "Action,Comedy,Superhero"}
    )
    assert 0 < three.json()["total"] < body["total"]
    none = await client.get("/api/manga/advanced-search", params={"genres": "Action,nonexistent"})
    error = assert_error(none, 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["genres"]


async def test_advanced_search_echoes_filters(client: httpx.AsyncClient) -> None:
    params = {
        "q": "one",
        "genres": "Action, Comedy,",
        "status": "Ongoing",
        "sort_by": "Title",
        "order": "DESC",
    }
    body = (await client.get("/api/manga/advanced-search", params=params)).json()
    assert body["filters"] == {
        "q": "one",
        "genres": ["Action", "Comedy"],
        "status": "ongoing",
        "sort_by": "title",
        "order": "desc",
        "formats": [],
        "year": None,
    }
    assert {"data", "page", "page_size", "total"} <= set(body)
    assert "One Punch-Man" in [m["title"] for m in body["data"]]
    # Without sort_by: relevance for a text query, popularity otherwise.
    relevance = (await client.get("/api/manga/advanced-search", params={"q": "one"})).json()
    assert relevance["filters"]["sort_by"] == "relevance"
    assert relevance["data"] == (await client.get("/api/manga", params={"q": "one"})).json()["data"]
    plain = (await client.get("/api/manga/advanced-search")).json()
    assert (plain["filters"]["sort_by"], plain["filters"]["order"]) == ("popularity", "desc")


async def test_advanced_search_rejects_unknown_sort(client: httpx.AsyncClient) -> None:
    for params in ({"sort_by": "random"}, {"order": "sideways"}):
        error = assert_error(
            await client.get("/api/manga/advanced-search", params=params), 422, "validation_error"
        )
        assert error["details"][0]["field"].endswith(next(iter(params)))


# --- one series ------------------------------------------------------------------------


async def test_get_manga_and_not_found(client: httpx.AsyncClient) -> None:
    first = (await client.get("/api/manga")).json()["data"][0]
    r = await client.get(f"/api/manga/{first['id']}")
    assert r.status_code == 200
    assert DETAIL_FIELDS <= set(r.json()) and r.json()["id"] == first["id"]
    for missing in (UNKNOWN_MANGA, 0, -1, 2**63):
        error = assert_error(await client.get(f"/api/manga/{missing}"), 404, "not_found")
        assert set(error) == {"code", "message", "details"}
    assert_error(await client.get("/api/manga/abc"), 422, "validation_error")


async def test_chapters_in_number_order(
    client: httpx.AsyncClient, admin: UserSession, runtime: Runtime
) -> None:
    manga = await create(client, admin)
    numbers = [10, 5.5, 1, 5, 2.25, 100]
    async with runtime.db.session() as s:
        s.add_all(
            ChapterRow(manga_id=manga["id"], number=n, title=f"Chapter {n}", language="en")
            for n in numbers
        )
    r = await client.get(f"/api/manga/{manga['id']}/chapters")
    assert r.status_code == 200
    body = r.json()
    assert [c["number"] for c in body["data"]] == sorted(numbers)
    assert body["total"] == len(numbers)
    page2 = await client.get(f"/api/manga/{manga['id']}/chapters", params={"limit": 4, "page": 2})
    assert [c["number"] for c in page2.json()["data"]] == sorted(numbers)[4:]
    assert {"id", "manga_id", "number", "title", "volume", "language", "published_at"} <= set(
        body["data"][0]
    )
    assert_error(await client.get(f"/api/manga/{UNKNOWN_MANGA}/chapters"), 404, "not_found")


async def test_genres_list(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/genres")
    assert r.status_code == 200
    genres = r.json()
    names = [g["name"] for g in genres]
    assert {"Action", "Slice of Life", "Girls' Love", "Sci-Fi"} <= set(names)
    assert names == sorted(names)
    slugs = {g["name"]: g["slug"] for g in genres}
    assert (slugs["Slice of Life"], slugs["Girls' Love"]) == ("slice-of-life", "girls-love")


# --- admin changes ---------------------------------------------------------------------


async def test_admin_creates_updates_and_deletes(
    client: httpx.AsyncClient, admin: UserSession
) -> None:
    word = tag()
    action, drama = await genre_ids(client, "Action", "Drama")
    created = await create(
        client,
        admin,
        title=f"Steel {word}",
        alt_titles=["鋼の"],
        authors=["Test Author"],
        status="hiatus",
        total_chapters=12,
        year=2020,
        genre_ids=[drama, action],
        description="A test series.",
    )
    assert created["slug"] == f"steel-{word}"
    assert created["genres"] == ["Action", "Drama"]
    assert (created["status"], created["total_chapters"], created["year"]) == ("hiatus", 12, 2020)
    assert created["average_rating"] is None and created["popularity"] == 0
    manga_id = created["id"]

    r = await client.patch(
        f"/api/manga/{manga_id}",
        json={"title": f"Iron {word}", "genre_ids": [drama], "cover_url": None},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["title"] == f"Iron {word}" and patched["genres"] == ["Drama"]
    # Fields not sent are kept; the slug stays so links keep working.
    assert (patched["status"], patched["total_chapters"], patched["authors"]) == (
        "hiatus",
        12,
        ["Test Author"],
    )
    assert patched["slug"] == created["slug"]
    assert patched["updated_at"] >= created["updated_at"]
    assert titles(await client.get("/api/manga", params={"q": f"iron {word}"})) == [f"Iron {word}"]
    assert titles(await client.get("/api/manga", params={"q": f"steel {word}"})) == []
    action_only = await client.get("/api/manga", params={"q": word, "genre": "action"})
    assert action_only.json()["total"] == 0

    before = (await client.get("/api/manga")).json()["total"]
    r = await client.delete(f"/api/manga/{manga_id}", headers=admin.headers)
    assert r.status_code == 204 and r.content == b""
    assert (await client.get("/api/manga")).json()["total"] == before - 1
    assert_error(await client.get(f"/api/manga/{manga_id}"), 404, "not_found")
    again = await client.delete(f"/api/manga/{manga_id}", headers=admin.headers)
    assert_error(again, 404, "not_found")
    assert titles(await client.get("/api/manga", params={"q": word})) == []


async def test_same_title_gets_a_distinct_slug(
    client: httpx.AsyncClient, admin: UserSession
) -> None:
    title = f"Twin {tag()}"
    first = await create(client, admin, title=title)
    second = await create(client, admin, title=title)
    assert second["slug"] == f"{first['slug']}-2"


async def test_changes_need_the_admin_role(
    client: httpx.AsyncClient, make_user: MakeUser, admin: UserSession
) -> None:
    user = await make_user()
    target = await create(client, admin)
    body = {"title": f"Nope {tag()}"}
    attempts = [
        ("POST", "/api/manga", body),
        ("PATCH", f"/api/manga/{target['id']}", body),
        ("DELETE", f"/api/manga/{target['id']}", None),
    ]
    for method, path, payload in attempts:
        r = await client.request(method, path, json=payload, headers=user.headers)
        assert_error(r, 403, "forbidden")
        assert_error(await client.request(method, path, json=payload), 401, "unauthorized")
    assert (await client.get(f"/api/manga/{target['id']}")).json()["title"] == target["title"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({}, "title"),
        ({"title": "x" * 501}, "title"),
        ({"title": "Fine", "status": "finished"}, "status"),
        ({"title": "Fine", "genre_ids": [2_000_000_000]}, "genre_ids"),
        ({"title": "Fine", "genre_ids": [2**40]}, "genre_ids"),
        ({"title": "Fine", "total_chapters": -1}, "total_chapters"),
        ({"title": "Fine", "anilist_id": 2**40}, "anilist_id"),
        ({"title": "Fine", "description": "nul \u0000 inside"}, "description"),
    ],
)
async def test_create_rejects_invalid_bodies(
    client: httpx.AsyncClient, admin: UserSession, body: dict[str, Any], field: str
) -> None:
    r = await client.post("/api/manga", json=body, headers=admin.headers)
    error = assert_error(r, 422, "validation_error")
    assert any(d["field"].endswith(field) for d in error["details"]), error


async def test_update_rejects_invalid_bodies(client: httpx.AsyncClient, admin: UserSession) -> None:
    target = await create(client, admin)
    path = f"/api/manga/{target['id']}"
    for body, field in (
        ({"title": None}, "title"),
        ({"status": None}, "status"),
        ({"title": ""}, "title"),
        ({"genre_ids": [2_000_000_000]}, "genre_ids"),
    ):
        r = await client.patch(path, json=body, headers=admin.headers)
        error = assert_error(r, 422, "validation_error")
        assert any(d["field"].endswith(field) for d in error["details"]), (body, error)
    missing = await client.patch(
        f"/api/manga/{UNKNOWN_MANGA}", json={"title": "x"}, headers=admin.headers
    )
    assert_error(missing, 404, "not_found")
    assert (await client.get(path)).json()["title"] == target["title"]


async def test_duplicate_source_id_is_a_conflict(
    client: httpx.AsyncClient, admin: UserSession
) -> None:
    mangadex_id = str(uuid.uuid4())
    await create(client, admin, mangadex_id=mangadex_id)
    r = await client.post(
        "/api/manga",
        json={"title": f"Copy {tag()}", "mangadex_id": mangadex_id},
        headers=admin.headers,
    )
    assert_error(r, 409, "conflict")
    # The bundled ONE PIECE owns its MangaDex id.
    r = await client.post(
        "/api/manga",
        json={"title": "ONE PIECE again", "mangadex_id": "a1c7c817-4e59-43b7-9365-09675a149a6f"},
        headers=admin.headers,
    )
    assert_error(r, 409, "conflict")


async def test_html_is_stored_and_returned_verbatim(
    client: httpx.AsyncClient, admin: UserSession
) -> None:
    word = tag()
    title = f"<script>alert('{word}')</script> & <b>bold</b>"
    created = await create(client, admin, title=title, description="<img src=x onerror=alert(1)>")
    assert created["title"] == title
    details = (await client.get(f"/api/manga/{created['id']}")).json()
    assert (details["title"], details["description"]) == (title, "<img src=x onerror=alert(1)>")
    assert titles(await client.get("/api/manga", params={"q": word})) == [title]


# --- bulk import -----------------------------------------------------------------------


def record(word: str, **fields: Any) -> SeriesRecord:
    values: dict[str, Any] = {
        "title": f"Imported {word}",
        "status": MangaStatus.ONGOING,
        "mangadex_id": str(uuid.uuid4()),
    }
    return SeriesRecord(**(values | fields))


async def stored(runtime: Runtime, word: str) -> list[Manga]:
    async with runtime.db.session() as s:
        rows = await s.scalars(select(Manga).where(Manga.title.contains(word)).order_by(Manga.id))
        return list(rows.all())


async def test_import_upserts_by_source_id(runtime: Runtime) -> None:
    word = tag()
    genre = f"Genre {word}"
    first = record(
        word,
        authors=("Author A",),
        genres=("Action", genre),
        description="first",
        anilist_id=None,
        total_chapters=10,
    )
    assert await runtime.catalog.import_series([first]) == 1
    assert await runtime.catalog.import_series([first]) == 0  # unchanged: nothing written
    (row,) = await stored(runtime, word)
    assert row.genres and {g.name for g in row.genres} == {"Action", genre}
    assert "Author A" in row.search_text and genre in row.search_text

    # A partial record (no description, no genres) updates what it knows only.
    partial = SeriesRecord(
        title=f"Imported {word} Renamed",
        status=MangaStatus.COMPLETED,
        mangadex_id=first.mangadex_id,
        anilist_id=1_000_000_000 + uuid.uuid4().int % 1_000_000_000,
        popularity=77,
    )
    assert await runtime.catalog.import_series([partial]) == 1
    (row,) = await stored(runtime, word)
    assert (row.title, row.status, row.popularity) == (partial.title, "completed", 77)
    assert (row.description, row.total_chapters, row.authors) == ("first", 10, ["Author A"])
    assert {g.name for g in row.genres} == {"Action", genre}

    # Matching by AniList id works when the record has no MangaDex id.
    by_anilist = SeriesRecord(
        title=partial.title, status=MangaStatus.HIATUS, anilist_id=partial.anilist_id
    )
    assert await runtime.catalog.import_series([by_anilist]) == 1
    (row,) = await stored(runtime, word)
    assert row.status == "hiatus" and row.mangadex_id == first.mangadex_id
    genres = await runtime.catalog.list_genres()
    assert genre in {g.name for g in genres}  # the cached genre list was refreshed


async def test_import_dedupes_and_makes_slugs_unique(runtime: Runtime) -> None:
    word = tag()
    same_id = str(uuid.uuid4())
    records = [
        record(word, mangadex_id=same_id, description="old"),
        record(word, mangadex_id=same_id, description="new"),  # same series: last wins
        record(word),  # same title, different series
        record(word, mangadex_id=None),
        record("", title="   "),  # unusable: skipped
    ]
    assert await runtime.catalog.import_series(records) == 3
    rows = await stored(runtime, word)
    assert len(rows) == 3
    slug = f"imported-{word}"
    assert sorted(r.slug for r in rows) == [slug, f"{slug}-2", f"{slug}-3"]
    assert next(r for r in rows if r.mangadex_id == same_id).description == "new"


async def test_import_scales_to_thousands(runtime: Runtime) -> None:
    word = tag()
    genres = ("Action", "Drama", f"Bulk {word}")
    records = [
        record(f"{word} {i}", genres=genres[: i % 3 + 1], authors=(f"A{i}",)) for i in range(2000)
    ]
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await runtime.catalog.import_series(records) == 2000
    elapsed = loop.time() - start
    assert elapsed < 30, elapsed
    async with runtime.db.session() as s:
        count = await s.scalar(select(func.count()).where(Manga.title.contains(word)))
    assert count == 2000
    body = await runtime.catalog.advanced_search(genres=[f"bulk {word}"], page_size=5)
    assert body[1] == sum(1 for i in range(2000) if i % 3 == 2)


# --- seeding from several processes at once --------------------------------------------


async def test_concurrent_seeding_loads_the_catalog_once(fresh_database_url: str) -> None:
    # Separate engines stand in for separate processes starting together.
    databases = [Database(fresh_database_url) for _ in range(3)]
    try:
        await databases[0].migrate()
        services = [CatalogService(db, MemoryCache()) for db in databases]
        added = await asyncio.gather(*(service.seed_bundled() for service in services))
        bundled = load_bundled()
        assert sorted(added) == [0, 0, len(bundled)]
        genres = {genre_slug(g) for r in bundled for g in r.genres}
        async with databases[0].session() as s:
            assert await s.scalar(select(func.count()).select_from(Manga)) == len(bundled)
            assert await s.scalar(select(func.count()).select_from(Genre)) == len(genres)
        assert await services[1].seed_bundled() == 0
        # A deleted bundled series stays deleted on the next start.
        first = (await services[0].list_manga(page_size=1))[0][0]
        await services[0].delete_manga(first.id)
        assert await services[2].seed_bundled() == 0
        # Every format: novels are listed only when asked for.
        assert (await services[0].advanced_search(formats=list(MangaFormat)))[1] == len(bundled) - 1
    finally:
        for db in databases:
            await db.close()
