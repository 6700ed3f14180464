"""PUT /api/manga/{id}/rating, GET, POST /api/manga/{id}/comments, DELETE /api/comments/{id}."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import select

from mangahub.app import Runtime
from mangahub.domain.errors import ValidationFailed
from mangahub.storage.models import Manga
from tests.conftest import MakeUser, UserSession
from tests.test_library import (
    UNKNOWN_MANGA,
    assert_error,
    assert_utc_iso,
    catalog_ids,
    error_fields,
    new_manga,
)

COMMENT_FIELDS = {"id", "manga_id", "user_id", "username", "content", "created_at"}


async def rate(
    client: httpx.AsyncClient, user: UserSession, manga_id: int, score: object
) -> httpx.Response:
    return await client.put(
        f"/api/manga/{manga_id}/rating", json={"score": score}, headers=user.headers
    )


async def comment(
    client: httpx.AsyncClient, user: UserSession, manga_id: int, content: object
) -> httpx.Response:
    return await client.post(
        f"/api/manga/{manga_id}/comments", json={"content": content}, headers=user.headers
    )


async def stored_rating(runtime: Runtime, manga_id: int) -> tuple[float | None, int]:
    async with runtime.db.session() as s:
        row = (
            await s.execute(
                select(Manga.average_rating, Manga.rating_count).where(Manga.id == manga_id)
            )
        ).one()
    return row.average_rating, row.rating_count


# --- ratings -----------------------------------------------------------------------------


async def test_rating_is_upserted_and_averaged(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, bob = await make_user(), await make_user()
    manga_id = await new_manga(runtime)
    assert await stored_rating(runtime, manga_id) == (None, 0)

    r = await rate(client, alice, manga_id, 3)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"manga_id", "score", "updated_at"}
    assert (body["manga_id"], body["score"]) == (manga_id, 3)
    assert_utc_iso(body["updated_at"])

    # Rating again replaces the first score instead of adding a second one.
    assert (await rate(client, alice, manga_id, 6)).json()["score"] == 6
    assert await stored_rating(runtime, manga_id) == (6.0, 1)
    assert (await rate(client, bob, manga_id, 9)).status_code == 200
    assert await stored_rating(runtime, manga_id) == (7.5, 2)

    r = await client.get(f"/api/manga/{manga_id}")
    assert r.status_code == 200, r.text
    assert r.json()["average_rating"] == 7.5


async def test_average_is_rounded_to_two_decimals(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    manga_id = await new_manga(runtime)
    for score in (10, 10, 9):
        assert (await rate(client, await make_user(), manga_id, score)).status_code == 200
    assert await stored_rating(runtime, manga_id) == (9.67, 3)


@pytest.mark.parametrize("score", [0, 11, -1, "7", 7.5, 7.0, True, None, [7]])
async def test_bad_scores_name_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime, score: object
) -> None:
    user = await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    r = await rate(client, user, manga_id, score)
    assert r.status_code == 422, r.text
    assert error_fields(r) == {"score"}


async def test_rating_an_unknown_manga_is_not_found(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    assert_error(await rate(client, user, UNKNOWN_MANGA, 5), 404, "not_found")


async def test_concurrent_scores_are_all_counted(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    users = [await make_user() for _ in range(8)]
    manga_id = await new_manga(runtime)
    scores = [1, 2, 3, 4, 7, 8, 9, 10]
    responses = await asyncio.gather(
        *(rate(client, user, manga_id, score) for user, score in zip(users, scores, strict=True))
    )
    assert [r.status_code for r in responses] == [200] * 8
    assert await stored_rating(runtime, manga_id) == (5.5, 8)


async def test_the_rating_is_the_entrys_score(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, bob = await make_user(), await make_user()
    manga_id = await new_manga(runtime)
    # Rating a series not listed lists it (as plan_to_read) with that score.
    assert (await rate(client, alice, manga_id, 4)).status_code == 200
    r = await client.get(f"/api/library/{manga_id}", headers=alice.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["score"], r.json()["status"]) == (4, "plan_to_read")

    # The same score, written through the entry, is what the average counts.
    r = await client.post(
        "/api/library",
        json={"manga_id": manga_id, "status": "completed", "score": 10},
        headers=bob.headers,
    )
    assert r.status_code == 201, r.text
    assert await stored_rating(runtime, manga_id) == (7.0, 2)
    r = await client.patch(f"/api/library/{manga_id}", json={"score": 8}, headers=bob.headers)
    assert r.status_code == 200, r.text
    assert await stored_rating(runtime, manga_id) == (6.0, 2)
    # Clearing a score leaves the entry; deleting the entry deletes its score.
    r = await client.patch(f"/api/library/{manga_id}", json={"score": None}, headers=bob.headers)
    assert r.json()["score"] is None
    assert await stored_rating(runtime, manga_id) == (4.0, 1)
    r = await client.delete(f"/api/library/{manga_id}", headers=alice.headers)
    assert r.status_code == 204
    assert await stored_rating(runtime, manga_id) == (None, 0)


# --- comments ----------------------------------------------------------------------------


async def test_comment_shape_and_verbatim_content(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    manga_id = await new_manga(runtime)
    content = "<script>alert('x')</script> \"; DROP TABLE comments; -- & 100% ünïcode\n🙂"
    r = await comment(client, user, manga_id, content)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == COMMENT_FIELDS
    assert body["content"] == content
    assert (body["manga_id"], body["user_id"], body["username"]) == (
        manga_id,
        user.id,
        user.username,
    )
    assert_utc_iso(body["created_at"])

    r = await client.get(f"/api/manga/{manga_id}/comments", headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"data": [body], "page": 1, "page_size": 20, "total": 1}


async def test_comments_are_newest_first_and_paginated(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, bob = await make_user(), await make_user()
    manga_id = await new_manga(runtime)
    ids = []
    for i in range(5):
        r = await comment(client, alice if i % 2 else bob, manga_id, f"comment {i}")
        ids.append(r.json()["id"])
    pages = []
    for page in (1, 2, 3):
        r = await client.get(
            f"/api/manga/{manga_id}/comments?page={page}&page_size=2", headers=alice.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["total"] == 5
        pages.append([c["id"] for c in r.json()["data"]])
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]


@pytest.mark.parametrize(
    "content",
    ["", "   \n\t", "x" * 2001, "bell\x07", "nul\x00byte", "del\x7f", None, 42, ["a"]],
)
async def test_bad_comments_name_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime, content: object
) -> None:
    user = await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    r = await comment(client, user, manga_id, content)
    assert r.status_code == 422, r.text
    assert error_fields(r) == {"content"}


async def test_longest_comment_is_accepted(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    manga_id = await new_manga(runtime)
    r = await comment(client, user, manga_id, "é" * 2000)
    assert r.status_code == 201, r.text
    assert len(r.json()["content"]) == 2000


async def test_comments_of_an_unknown_manga_are_not_found(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    assert_error(await comment(client, user, UNKNOWN_MANGA, "hello"), 404, "not_found")
    r = await client.get(f"/api/manga/{UNKNOWN_MANGA}/comments", headers=user.headers)
    assert_error(r, 404, "not_found")


async def test_author_and_admin_may_delete_others_may_not(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime, admin: UserSession
) -> None:
    author, other = await make_user(), await make_user()
    manga_id = await new_manga(runtime)
    first = (await comment(client, author, manga_id, "first")).json()["id"]
    second = (await comment(client, author, manga_id, "second")).json()["id"]

    r = await client.delete(f"/api/comments/{first}", headers=other.headers)
    assert_error(r, 403, "forbidden")

    r = await client.delete(f"/api/comments/{first}", headers=author.headers)
    assert r.status_code == 204, r.text
    assert_error(
        await client.delete(f"/api/comments/{first}", headers=author.headers), 404, "not_found"
    )

    r = await client.delete(f"/api/comments/{second}", headers=admin.headers)
    assert r.status_code == 204, r.text
    r = await client.get(f"/api/manga/{manga_id}/comments", headers=author.headers)
    assert r.json()["total"] == 0


async def test_deleting_an_unknown_comment_is_not_found(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    for comment_id in (2_000_000_000, 2**70, 0):
        r = await client.delete(f"/api/comments/{comment_id}", headers=user.headers)
        assert_error(r, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/manga/1/rating"),
        ("GET", "/api/manga/1/comments"),
        ("POST", "/api/manga/1/comments"),
        ("DELETE", "/api/comments/1"),
    ],
)
async def test_requires_a_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    r = await client.request(method, path, json={"score": 5, "content": "hi"})
    assert_error(r, 401, "unauthorized")


async def test_service_validates_for_every_door(make_user: MakeUser, runtime: Runtime) -> None:
    user = await make_user()
    user_id = uuid.UUID(user.id)
    manga_id = await new_manga(runtime)
    with pytest.raises(ValidationFailed):
        await runtime.reading_list.rate(user_id, manga_id, 11)
    with pytest.raises(ValidationFailed):
        await runtime.social.create_comment(user_id, manga_id, "\x1b[31mred")
