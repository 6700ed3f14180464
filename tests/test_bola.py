"""Broken object-level authorization: one reader can never read or change another
reader's library, progress, comments or notifications, and a ``user_id`` in a body
changes nothing (identity comes from the token only)."""

from __future__ import annotations

import uuid

import httpx
import jwt
from sqlalchemy import select

from mangahub.app import Runtime
from mangahub.domain.enums import NotificationKind
from mangahub.storage.models import ReadingEntry
from tests.conftest import MakeUser
from tests.test_library import assert_error, catalog_ids, new_manga


async def test_library_entries_are_private(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, mallory = await make_user("alice"), await make_user("mallory")
    (manga_id,) = await catalog_ids(runtime, 1)
    r = await client.post(
        "/api/library", json={"manga_id": manga_id, "status": "reading"}, headers=alice.headers
    )
    assert r.status_code == 201

    assert (await client.get("/api/library", headers=mallory.headers)).json()["total"] == 0
    r = await client.get(f"/api/library/{manga_id}", headers=mallory.headers)
    assert_error(r, 404, "not_found")
    r = await client.patch(
        f"/api/library/{manga_id}", json={"status": "dropped"}, headers=mallory.headers
    )
    assert_error(r, 404, "not_found")
    assert_error(
        await client.delete(f"/api/library/{manga_id}", headers=mallory.headers), 404, "not_found"
    )

    (entry,) = (await client.get("/api/library", headers=alice.headers)).json()["data"]
    assert (entry["manga_id"], entry["status"]) == (manga_id, "reading")


async def test_user_id_in_a_library_body_is_ignored(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, mallory = await make_user("alice"), await make_user("mallory")
    (manga_id,) = await catalog_ids(runtime, 1)
    r = await client.post(
        "/api/library", json={"manga_id": manga_id, "user_id": alice.id}, headers=mallory.headers
    )
    assert r.status_code == 201, r.text
    assert (await client.get("/api/library", headers=alice.headers)).json()["total"] == 0
    assert (await client.get("/api/library", headers=mallory.headers)).json()["total"] == 1


async def test_progress_is_private(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, mallory = await make_user("alice"), await make_user("mallory")
    (manga_id,) = await catalog_ids(runtime, 1)
    r = await client.put(
        "/api/users/progress", json={"manga_id": manga_id, "chapter": 30}, headers=alice.headers
    )
    assert r.status_code == 200
    alices = r.json()

    r = await client.get(f"/api/users/progress/{manga_id}", headers=mallory.headers)
    assert_error(r, 404, "not_found")
    assert (await client.get("/api/users/progress", headers=mallory.headers)).json()["data"] == []

    # Writing "the same" progress with a forged user_id writes the caller's own row.
    r = await client.put(
        "/api/users/progress",
        json={"manga_id": manga_id, "chapter": 1, "user_id": alice.id},
        headers=mallory.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1  # mallory's first write, on mallory's counter
    r = await client.get(f"/api/users/progress/{manga_id}", headers=alice.headers)
    assert r.json() == alices


async def test_comments_belong_to_their_author(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, mallory = await make_user("alice"), await make_user("mallory")
    manga_id = await new_manga(runtime)
    r = await client.post(
        f"/api/manga/{manga_id}/comments", json={"content": "mine"}, headers=alice.headers
    )
    comment_id = r.json()["id"]

    r = await client.delete(f"/api/comments/{comment_id}", headers=mallory.headers)
    assert_error(r, 403, "forbidden")

    # A forged author is ignored: the comment is mallory's own.
    r = await client.post(
        f"/api/manga/{manga_id}/comments",
        json={"content": "as alice?", "user_id": alice.id, "username": alice.username},
        headers=mallory.headers,
    )
    assert r.status_code == 201
    assert (r.json()["user_id"], r.json()["username"]) == (mallory.id, mallory.username)

    listed = (await client.get(f"/api/manga/{manga_id}/comments", headers=alice.headers)).json()[
        "data"
    ]
    assert [c["id"] for c in listed][-1] == comment_id


async def test_ratings_are_per_caller(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, mallory = await make_user("alice"), await make_user("mallory")
    manga_id = await new_manga(runtime)
    path = f"/api/manga/{manga_id}/rating"
    assert (await client.put(path, json={"score": 10}, headers=alice.headers)).status_code == 200
    # Mallory cannot overwrite alice's score by naming her: this is a second rating.
    r = await client.put(path, json={"score": 1, "user_id": alice.id}, headers=mallory.headers)
    assert r.status_code == 200
    async with runtime.db.session() as s:
        rows = await s.execute(
            select(ReadingEntry.user_id, ReadingEntry.score).where(
                ReadingEntry.manga_id == manga_id
            )
        )
        scores = dict(rows.all())
    assert scores == {uuid.UUID(alice.id): 10, uuid.UUID(mallory.id): 1}


async def test_notifications_are_private(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, mallory = await make_user("alice"), await make_user("mallory")
    await runtime.notifications.notify_users(
        [uuid.UUID(alice.id)], NotificationKind.SYSTEM, None, "Welcome", "Hello alice", {}
    )
    (notification,) = (await client.get("/api/notifications", headers=alice.headers)).json()["data"]

    assert (await client.get("/api/notifications", headers=mallory.headers)).json()["total"] == 0
    # Someone else's id answers exactly like a missing one.
    r = await client.post(f"/api/notifications/{notification['id']}/read", headers=mallory.headers)
    assert_error(r, 404, "not_found")
    r = await client.post("/api/notifications/read-all", headers=mallory.headers)
    assert r.json() == {"updated": 0}

    unread = (await client.get("/api/notifications?unread=true", headers=alice.headers)).json()
    assert [n["id"] for n in unread["data"]] == [notification["id"]]


async def test_a_token_signed_with_another_key_is_refused(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    alice = await make_user("alice")
    claims = jwt.decode(alice.access_token, options={"verify_signature": False})
    forged = jwt.encode(claims, "another-secret-that-is-at-least-32-chars", algorithm="HS256")
    r = await client.get("/api/library", headers={"Authorization": f"Bearer {forged}"})
    assert_error(r, 401, "unauthorized")
