"""GetManga and SearchManga over a real aio channel: answers match the catalog services,
bad input gets INVALID_ARGUMENT or NOT_FOUND (never UNKNOWN)."""

from __future__ import annotations

import grpc
import httpx
import pytest
from prometheus_client import CollectorRegistry

from mangahub.app import Runtime
from mangahub.domain.enums import SourceStatus
from mangahub.grpcapi.errors import ERROR_CODE_KEY
from mangahub.v1 import manga_pb2, manga_pb2_grpc
from tests.conftest import MakeUser


async def _error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


async def test_get_manga_carries_the_catalog_details(
    stub: manga_pb2_grpc.MangaServiceStub, runtime: Runtime
) -> None:
    summaries, _ = await runtime.catalog.advanced_search("one piece", page_size=1)
    expected = await runtime.catalog.get_manga(summaries[0].id)

    manga = await stub.GetManga(manga_pb2.GetMangaRequest(id=expected.id), timeout=10)

    assert manga.id == expected.id
    assert manga.slug == expected.slug
    assert manga.title == expected.title
    assert list(manga.alt_titles) == expected.alt_titles
    assert list(manga.authors) == expected.authors
    assert manga.description == expected.description
    assert list(manga.genres) == expected.genres
    assert manga.status == expected.status.value
    assert manga.source == "local"
    assert manga.mangadex_id == expected.mangadex_id
    assert manga.cover_image_url == expected.cover_url
    # Unknown values stay unset rather than looking like zero.
    for field, value in [
        ("total_chapters", expected.total_chapters),
        ("average_rating", expected.average_rating),
        ("year", expected.year),
        ("anilist_id", expected.anilist_id),
    ]:
        assert manga.HasField(field) == (value is not None), field
        if value is not None:
            assert getattr(manga, field) == value


async def test_average_rating_is_a_double_once_users_rate(
    stub: manga_pb2_grpc.MangaServiceStub,
    runtime: Runtime,
    make_user: MakeUser,
    client: httpx.AsyncClient,
    short_manga: tuple[int, int],
) -> None:
    manga_id, _ = short_manga
    for score in (7, 8):
        user = await make_user("rater")
        r = await client.put(
            f"/api/manga/{manga_id}/rating", json={"score": score}, headers=user.headers
        )
        assert r.status_code == 200, r.text
    expected = (await runtime.catalog.get_manga(manga_id)).average_rating
    assert expected is not None

    manga = await stub.GetManga(manga_pb2.GetMangaRequest(id=manga_id), timeout=10)

    assert manga.HasField("average_rating")
    assert manga.average_rating == pytest.approx(expected)


@pytest.mark.parametrize(
    ("manga_id", "code"),
    [
        (0, grpc.StatusCode.INVALID_ARGUMENT),
        (-7, grpc.StatusCode.INVALID_ARGUMENT),
        (2**31 - 2, grpc.StatusCode.NOT_FOUND),
        (2**62, grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_get_manga_bad_ids(
    stub: manga_pb2_grpc.MangaServiceStub, manga_id: int, code: grpc.StatusCode
) -> None:
    error = await _error(stub.GetManga(manga_pb2.GetMangaRequest(id=manga_id), timeout=10))
    assert error.code() == code
    expected = "not_found" if code == grpc.StatusCode.NOT_FOUND else "validation_error"
    assert (ERROR_CODE_KEY, expected) in tuple(error.trailing_metadata() or ())


async def test_search_pages_like_the_federated_service(
    stub: manga_pb2_grpc.MangaServiceStub, runtime: Runtime
) -> None:
    expected = await runtime.federated.search("one", limit=3, offset=3, sources=["local"])

    found = await stub.SearchManga(
        manga_pb2.SearchMangaRequest(query="one", limit=3, offset=3, sources=["local"]),
        timeout=10,
    )

    assert found.page == 2 == expected.page
    assert found.total_count == expected.total > 3
    assert [m.id for m in found.results] == [m.id for m in expected.results]
    assert [m.title for m in found.results] == [m.title for m in expected.results]
    assert all(m.source == "local" for m in found.results)
    assert [(s.name, s.status, s.results) for s in found.sources] == [("local", "ok", 3)]


async def test_search_reports_every_source_asked(
    stub: manga_pb2_grpc.MangaServiceStub, runtime: Runtime
) -> None:
    # Whatever the external sources do here (unreachable in tests), the local catalog
    # still answers and each source says how it fared.
    found = await stub.SearchManga(manga_pb2.SearchMangaRequest(query="one"), timeout=10)
    reports = {s.name: s for s in found.sources}
    assert set(reports) <= set(runtime.federated.source_names)
    assert reports["local"].status == "ok"
    assert all(r.status in {s.value for s in SourceStatus} for r in reports.values())
    local = [m for m in found.results if m.source == "local"]
    assert local and all(m.HasField("id") for m in local)


async def test_search_limit_defaults_to_20_and_page_is_offset_over_limit_plus_one(
    stub: manga_pb2_grpc.MangaServiceStub,
) -> None:
    found = await stub.SearchManga(manga_pb2.SearchMangaRequest(offset=45), timeout=10)
    assert len(found.results) == 20
    assert found.page == 45 // 20 + 1
    beyond = await stub.SearchManga(
        manga_pb2.SearchMangaRequest(query="one", limit=100, offset=2**31 - 1, sources=["local"]),
        timeout=10,
    )
    assert list(beyond.results) == [] and beyond.total_count > 0


async def test_search_sources_narrow_to_local(stub: manga_pb2_grpc.MangaServiceStub) -> None:
    found = await stub.SearchManga(
        manga_pb2.SearchMangaRequest(query="one", sources=["local"]), timeout=10
    )
    assert [s.name for s in found.sources] == ["local"]
    assert found.results and all(m.HasField("id") for m in found.results)


@pytest.mark.parametrize(
    "request_",
    [
        manga_pb2.SearchMangaRequest(query="one", limit=101),
        manga_pb2.SearchMangaRequest(query="one", limit=-1),
        manga_pb2.SearchMangaRequest(query="one", offset=-1),
        manga_pb2.SearchMangaRequest(query="x" * 201),
        manga_pb2.SearchMangaRequest(query="one\x00piece"),
        manga_pb2.SearchMangaRequest(query="one", sources=["nowhere"]),
        manga_pb2.SearchMangaRequest(query="one", sources=["local"] * 11),
        manga_pb2.SearchMangaRequest(query="one", sources=["x" * 51]),
    ],
    ids=[
        "limit-too-big",
        "limit-negative",
        "offset-negative",
        "query-too-long",
        "query-nul",
        "unknown-source",
        "too-many-sources",
        "source-name-too-long",
    ],
)
async def test_search_bad_input_is_invalid_argument(
    stub: manga_pb2_grpc.MangaServiceStub, request_: manga_pb2.SearchMangaRequest
) -> None:
    error = await _error(stub.SearchManga(request_, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details()


async def test_undecodable_request_is_not_unknown(channel: grpc.aio.Channel) -> None:
    # Field 1 (query) holding bytes that are not UTF-8: protobuf refuses to parse it.
    raw = channel.unary_unary("/mangahub.v1.MangaService/SearchManga")
    error = await _error(raw(b"\x0a\x02\xff\xfe", timeout=10))
    assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK)


async def test_oversized_request_is_refused(channel: grpc.aio.Channel) -> None:
    raw = channel.unary_unary("/mangahub.v1.MangaService/SearchManga")
    big = manga_pb2.SearchMangaRequest(query="x" * 200_000).SerializeToString()
    error = await _error(raw(big, timeout=10))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_calls_are_counted_by_method_and_code(
    stub: manga_pb2_grpc.MangaServiceStub, grpc_registry: CollectorRegistry
) -> None:
    def count(method: str, code: str) -> float:
        value = grpc_registry.get_sample_value(
            "mangahub_grpc_requests_total", {"method": method, "code": code}
        )
        return value or 0.0

    ok, missing = count("GetManga", "OK"), count("GetManga", "NOT_FOUND")
    await stub.GetManga(manga_pb2.GetMangaRequest(id=1), timeout=10)
    await _error(stub.GetManga(manga_pb2.GetMangaRequest(id=2**40), timeout=10))
    assert count("GetManga", "OK") == ok + 1
    assert count("GetManga", "NOT_FOUND") == missing + 1
    observed = grpc_registry.get_sample_value(
        "mangahub_grpc_request_seconds_count", {"method": "GetManga"}
    )
    assert observed is not None and observed >= 2
