"""``mangahub sources sync``: a real process against the fake sources; one-line errors
with exit codes a script can branch on."""

from __future__ import annotations

import asyncio
import sys

import pytest
from typer.testing import CliRunner

from mangahub.cli.main import app
from tests.fakes.sources import FakeSources
from tests.sync.conftest import SyncEnv


async def sources_sync(env: SyncEnv, fake: FakeSources, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mangahub",
        "sources",
        "sync",
        *args,
        # The limiter has its own tests; here it would only make the run wait.
        env=env.backend.process_env(
            MANGAHUB_MANGADEX_URL=fake.mangadex_url,
            MANGAHUB_MANGADEX_REQUESTS_PER_SECOND="500",
            MANGAHUB_MANGADEX_BURST="100",
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_a_sync_run_reports_each_job(env: SyncEnv, fake: FakeSources) -> None:
    code, _, err = await sources_sync(env, fake, "mangadex")
    assert code == 0, err
    lines = err.splitlines()
    assert [line.split(" ")[0] for line in lines] == [
        "mangadex_import",
        "mangadex_poll",
        "mangadex_chapters",
    ]
    assert "series_seen=132" in lines[0]


@pytest.mark.slow
async def test_an_unreachable_source_exits_6_with_one_line(env: SyncEnv, fake: FakeSources) -> None:
    fake.fail_next("mangadex", 503, count=5, headers={"Retry-After": "0"})
    code, _, err = await sources_sync(env, fake, "mangadex", "--job", "import")
    assert code == 6
    assert err.count("\n") == 1 and err.startswith("error: mangadex_import failed: mangadex:")
    assert "HTTP 503 after 5 attempt(s)" in err


@pytest.mark.slow
async def test_a_refused_request_exits_1_with_one_line(env: SyncEnv, fake: FakeSources) -> None:
    fake.fail_next("mangadex", 400)
    code, _, err = await sources_sync(env, fake, "mangadex", "--job", "poll")
    assert code == 1
    assert err.count("\n") == 1 and "HTTP 400: injected failure" in err


def test_bad_arguments_exit_2() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["sources", "sync", "mangadex", "--job", "enrich"])
    assert result.exit_code == 2
    assert "mangadex has no job 'enrich'; choose import, poll, chapters" in result.output
    result = runner.invoke(app, ["sources", "sync", "kitsu"])
    assert result.exit_code == 2 and "unknown source 'kitsu'" in result.output
