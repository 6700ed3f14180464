"""Read models across processes: two api processes on PostgreSQL + Redis; a write
acknowledged by one (admin PATCH, a score, a sync import in a third process) is in
the very next read on the other, though that one had the series cached, and in its
next search (answered from its in-memory catalog): a score moves the series in the
rating order at once."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from mangahub.app import Runtime
from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaStatus
from mangahub.servers import PARTS
from tests.conftest import ADMIN_PASSWORD, BACKEND, Backend
from tests.deploy.test_cluster import cluster_running

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BACKEND != "postgres",
        reason="several processes need PostgreSQL + Redis (MANGAHUB_TEST_BACKEND=postgres)",
    ),
]


async def read(api: httpx.AsyncClient, manga_id: int) -> dict[str, Any]:
    r = await api.get(f"/api/manga/{manga_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def by_rating(api: httpx.AsyncClient, word: str, **params: str) -> list[int]:
    """The ids of the series matching ``word``, best rated first (or ``order``)."""
    r = await api.get(
        "/api/manga/advanced-search", params={"q": word, "sort_by": "rating", **params}
    )
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["data"]]


async def token(api: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    r = await api.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_every_writer_is_seen_by_the_next_read_on_another_process(
    backend: Backend, runtime: Runtime
) -> None:
    only_api = [f"--scale={part}=0" for part in PARTS if part != "api"]
    async with cluster_running(backend, "--scale=api=2", *only_api) as cluster:
        host1, port1 = cluster.at("api", 1, "http")
        host2, port2 = cluster.at("api", 2, "http")
        async with (
            httpx.AsyncClient(base_url=f"http://{host1}:{port1}", timeout=10) as one,
            httpx.AsyncClient(base_url=f"http://{host2}:{port2}", timeout=10) as two,
        ):
            admin = await token(one, "admin", ADMIN_PASSWORD)
            word = f"Cluster{uuid.uuid4().hex[:8]}"
            r = await one.post(
                "/api/manga", json={"title": f"{word} A", "status": "ongoing"}, headers=admin
            )
            assert r.status_code == 201, r.text
            manga_id = r.json()["id"]
            for _ in range(3):  # cached on both now
                assert (await read(two, manga_id))["title"] == f"{word} A"
                assert (await read(one, manga_id))["title"] == f"{word} A"
            r = await two.get("/api/manga/advanced-search", params={"q": word})
            assert [m["title"] for m in r.json()["data"]] == [f"{word} A"]

            # An admin edit on api#1.
            r = await one.patch(
                f"/api/manga/{manga_id}", json={"title": f"{word} B"}, headers=admin
            )
            assert r.status_code == 200, r.text
            assert (await read(two, manga_id))["title"] == f"{word} B"
            r = await two.get("/api/manga/advanced-search", params={"q": word})
            assert [m["title"] for m in r.json()["data"]] == [f"{word} B"]

            # A score on api#1.
            name = f"u{uuid.uuid4().hex[:10]}"
            r = await one.post(
                "/api/auth/register",
                json={"username": name, "email": f"{name}@example.com", "password": "pw-123456789"},
            )
            assert r.status_code == 201, r.text
            user = await token(one, name, "pw-123456789")
            r = await one.post(
                "/api/manga", json={"title": f"{word} Other", "status": "ongoing"}, headers=admin
            )
            assert r.status_code == 201, r.text
            other_id = r.json()["id"]
            assert await by_rating(two, word) == [manga_id, other_id]  # unrated: by id
            r = await one.put(f"/api/manga/{manga_id}/rating", json={"score": 9}, headers=user)
            assert r.status_code == 200, r.text
            assert (await read(two, manga_id))["average_rating"] == 9.0
            # A score keeps updated_at: only its event can move the series in search.
            r = await one.put(f"/api/manga/{other_id}/rating", json={"score": 10}, headers=user)
            assert r.status_code == 200, r.text
            assert await by_rating(two, word) == [other_id, manga_id]
            assert await by_rating(two, word, order="asc") == [manga_id, other_id]

            # A sync import in a third process (this test's runtime, on the same bus).
            mangadex_id = str(uuid.uuid4())
            record = SeriesRecord(
                title=f"{word} Imported", status=MangaStatus.ONGOING, mangadex_id=mangadex_id
            )
            await runtime.catalog.import_series([record])
            [imported] = await runtime.catalog.find_by_source_ids([mangadex_id], [])
            assert (await read(one, imported.id))["description"] == ""
            assert (await read(two, imported.id))["description"] == ""
            await runtime.catalog.import_series(
                [
                    SeriesRecord(
                        title=record.title,
                        status=MangaStatus.COMPLETED,
                        mangadex_id=mangadex_id,
                        description="Imported again",
                    )
                ]
            )
            for api in (one, two):
                again = await read(api, imported.id)
                assert (again["description"], again["status"]) == ("Imported again", "completed")

            # A delete on api#2 is a 404 on api#1.
            r = await two.delete(f"/api/manga/{manga_id}", headers=admin)
            assert r.status_code == 204, r.text
            assert (await one.get(f"/api/manga/{manga_id}")).status_code == 404
