"""The fake sources keep tests apart: a request still delayed when the next test
resets the fake neither shows up in its record nor uses its injected failures."""

from __future__ import annotations

import asyncio

import httpx

from tests.fakes.sources import FakeSources


async def test_a_request_outliving_a_reset_leaves_no_trace(fake: FakeSources) -> None:
    fake.delay("mangadex", 30)
    async with httpx.AsyncClient(timeout=10) as client:
        late = asyncio.ensure_future(client.get(f"{fake.mangadex_url}/manga", params={"limit": 1}))
        await asyncio.sleep(0.3)  # it has arrived and waits
        fake.reset()
        fake.fail_next("mangadex", 500)
        answer = await late  # woken by the reset, answered without the new steering
        assert answer.status_code == 503
        assert fake.requests == []
        fresh = await client.get(f"{fake.mangadex_url}/manga", params={"limit": 1})
        assert fresh.status_code == 500  # the injected failure was still there
    assert [(r.path, r.status) for r in fake.requests] == [("/manga", 500)]


async def test_the_fake_enforces_mangadex_limits(fake: FakeSources) -> None:
    async with httpx.AsyncClient() as client:
        too_many = await client.get(f"{fake.mangadex_url}/manga", params={"limit": 101})
        window = await client.get(
            f"{fake.mangadex_url}/manga", params={"limit": 100, "offset": 9_901}
        )
        unknown = await client.get(f"{fake.mangadex_url}/manga/{'0' * 8}-0000-0000-0000-{'0' * 12}")
    assert too_many.status_code == window.status_code == 400
    assert window.json()["errors"][0]["detail"].startswith("Result window is too large")
    assert unknown.status_code == 404 and unknown.json()["result"] == "error"
