"""GET /api/notifications, POST /api/notifications/{id}/read and /read-all; raising
notifications through the service (stored first, then published)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from mangahub.app import Runtime
from mangahub.domain.enums import NotificationKind
from mangahub.domain.errors import NotFound, ValidationFailed
from tests.conftest import MakeUser, UserSession
from tests.test_library import (
    UNKNOWN_MANGA,
    assert_error,
    assert_utc_iso,
    catalog_ids,
    live_subscription,
    new_manga,
)

NOTIFICATION_FIELDS = {"id", "kind", "manga_id", "title", "message", "data", "read", "created_at"}


async def notify(runtime: Runtime, *users: UserSession, manga_id: int, chapter: float = 5) -> int:
    return await runtime.notifications.notify_users(
        [uuid.UUID(u.id) for u in users],
        NotificationKind.NEW_CHAPTER,
        manga_id,
        "New chapter",
        f"Chapter {chapter:g} is out",
        {"chapter": chapter, "previous_chapter": chapter - 1},
    )


async def listing(client: httpx.AsyncClient, user: UserSession, query: str = "") -> dict[str, Any]:
    r = await client.get(f"/api/notifications{query}", headers=user.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_stored_then_listed_read_and_read_all(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    manga_id = await new_manga(runtime)
    assert await notify(runtime, user, manga_id=manga_id, chapter=5) == 1
    assert await notify(runtime, user, manga_id=manga_id, chapter=6) == 1

    page = await listing(client, user)
    assert (page["page"], page["page_size"], page["total"]) == (1, 20, 2)
    newest, oldest = page["data"]
    assert set(newest) == NOTIFICATION_FIELDS
    assert newest["kind"] == "new_chapter"
    assert newest["manga_id"] == manga_id
    assert (newest["title"], newest["message"]) == ("New chapter", "Chapter 6 is out")
    assert newest["data"] == {"chapter": 6, "previous_chapter": 5}
    assert newest["read"] is False
    assert newest["id"] > oldest["id"]
    assert_utc_iso(newest["created_at"])

    r = await client.post(f"/api/notifications/{oldest['id']}/read", headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {**oldest, "read": True}
    unread = await listing(client, user, "?unread=true")
    assert unread["total"] == 1
    assert [n["id"] for n in unread["data"]] == [newest["id"]]

    r = await client.post("/api/notifications/read-all", headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"updated": 1}
    assert (await listing(client, user, "?unread=true"))["total"] == 0
    assert (await listing(client, user))["total"] == 2
    r = await client.post("/api/notifications/read-all", headers=user.headers)
    assert r.json() == {"updated": 0}


async def test_listing_is_newest_first_and_paginated(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    manga_id = await new_manga(runtime)
    for chapter in range(1, 6):
        await notify(runtime, user, manga_id=manga_id, chapter=chapter)
    first = await listing(client, user, "?page=1&page_size=2")
    last = await listing(client, user, "?page=3&page_size=2")
    assert first["total"] == last["total"] == 5
    messages = [n["message"] for n in first["data"] + last["data"]]
    assert messages == ["Chapter 5 is out", "Chapter 4 is out", "Chapter 1 is out"]


async def test_every_recipient_gets_a_row_and_an_event(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, bob = await make_user(), await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    subs = [await live_subscription(runtime.bus, f"notify:{u.id}") for u in (alice, bob)]
    try:
        # Duplicates collapse: one row per recipient.
        assert await notify(runtime, alice, bob, alice, manga_id=manga_id) == 2
        for user, sub in zip((alice, bob), subs, strict=True):
            topic, event = await asyncio.wait_for(sub.get(), 2)
            assert topic == f"notify:{user.id}"
            assert event["type"] == "notification"
            (stored,) = (await listing(client, user))["data"]
            assert {k: event[k] for k in NOTIFICATION_FIELDS} == stored
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sub.get(), 0.2)
    finally:
        for sub in subs:
            await sub.close()


async def test_notify_nobody_and_bad_input(make_user: MakeUser, runtime: Runtime) -> None:
    user = await make_user()
    service = runtime.notifications
    kind = NotificationKind.SYSTEM
    assert await service.notify_users([], kind, None, "Maintenance", "tonight") == 0
    user_ids = [uuid.UUID(user.id)]
    assert await service.notify_users(user_ids, kind, None, "Maintenance", "tonight") == 1
    with pytest.raises(NotFound):
        await service.notify_users(user_ids, kind, UNKNOWN_MANGA, "t", "m")
    with pytest.raises(ValidationFailed):
        await service.notify_users(user_ids, kind, None, "x" * 501, "m")


async def test_mark_read_of_an_unknown_id_is_not_found(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    for notification_id in (2_000_000_000, 2**70, 0):
        r = await client.post(f"/api/notifications/{notification_id}/read", headers=user.headers)
        assert_error(r, 404, "not_found")


async def test_unread_filter_must_be_a_boolean(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    r = await client.get("/api/notifications?unread=maybe", headers=user.headers)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/notifications"),
        ("POST", "/api/notifications/1/read"),
        ("POST", "/api/notifications/read-all"),
    ],
)
async def test_requires_a_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    assert_error(await client.request(method, path), 401, "unauthorized")


async def test_recipients_are_the_readers_who_list_the_series(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    in_library, with_progress, both, removed, _stranger = [await make_user() for _ in range(5)]
    manga_id = await new_manga(runtime)
    for user in (in_library, both, removed):
        await runtime.reading_list.add(uuid.UUID(user.id), manga_id, {"status": "reading"})
    for user in (with_progress, both):
        # A chapter write lists the series too.
        await runtime.reading_list.set_progress(uuid.UUID(user.id), manga_id, 1)
    await runtime.reading_list.remove(uuid.UUID(removed.id), manga_id)
    found = await runtime.notifications.recipients_for_manga(manga_id)
    assert sorted(found) == sorted(uuid.UUID(u.id) for u in (in_library, with_progress, both))
    assert await runtime.notifications.recipients_for_manga(UNKNOWN_MANGA) == []
