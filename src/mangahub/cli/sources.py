"""``mangahub sources sync mangadex|anilist``: run sync jobs now, server-side.

Runs against the configured database (like ``mangahub db``), under the same leases
as the ``sync`` part of ``mangahub serve``, so it never runs a job at the same time
as a server does. Exit codes: 5 when the job is already running elsewhere, 6 when
the source cannot be reached, 1 when the source refused or the job failed otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mangahub.cli.output import (
    EXIT_BAD_INPUT,
    EXIT_CONFLICT,
    EXIT_ERROR,
    EXIT_UNAVAILABLE,
    CliError,
    err_console,
    handle_errors,
)
from mangahub.config import Settings, load_settings

if TYPE_CHECKING:
    from mangahub.sync.runner import JobOutcome
    from mangahub.sync.state import JobType

# The server side is imported inside the command, so that every other command of the
# CLI starts without loading it.

app = typer.Typer(help="External sources: sync the catalog now.", no_args_is_help=True)

Source = Literal["mangadex", "anilist"]
JOB_NAMES: dict[str, JobType] = {
    "import": "mangadex_import",
    "poll": "mangadex_poll",
    "chapters": "mangadex_chapters",
    "enrich": "anilist_enrich",
}
SOURCE_JOBS: dict[str, tuple[str, ...]] = {
    "mangadex": ("import", "poll", "chapters"),
    "anilist": ("enrich",),
}


@app.command("sync")
@handle_errors
def sync(
    source: Annotated[str, typer.Argument(help="mangadex or anilist")],
    job: Annotated[
        str | None,
        typer.Option(
            "--job",
            help="import | poll | chapters (mangadex), enrich (anilist). Default: "
            "mangadex runs the import (if never completed), the poll, then the chapter check.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML config file (default: ./mangahub.toml)."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", metavar="", help="Log each request retry.")
    ] = False,
) -> None:
    """Run a source's sync jobs now, with a progress bar."""
    if source not in SOURCE_JOBS:
        raise CliError(f"unknown source {source!r}; choose mangadex or anilist", EXIT_BAD_INPUT)
    if job is not None and job not in SOURCE_JOBS[source]:
        choices = ", ".join(SOURCE_JOBS[source])
        raise CliError(f"{source} has no job {job!r}; choose {choices}", EXIT_BAD_INPUT)
    try:
        settings = load_settings(config)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from None
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if verbose:
        logging.getLogger("mangahub.sources").setLevel(logging.DEBUG)  # each retry
    outcomes = asyncio.run(_sync(settings, source, job))
    for outcome in outcomes:
        counts = ", ".join(f"{k}={v}" for k, v in outcome.counts.items() if k != "failures")
        err_console.print(f"[green]{outcome.job}[/green] done: {counts}")


async def _sync(settings: Settings, source: str, job: str | None) -> list[JobOutcome]:
    from mangahub.app import build_runtime
    from mangahub.sync.setup import build_runner

    async with build_runtime(settings) as runtime:
        clients = runtime.sources
        if (source == "mangadex" and clients.mangadex is None) or (
            source == "anilist" and clients.anilist is None
        ):
            setting = "anilist_enabled" if source == "anilist" else "mangadex_enabled, mangadex_url"
            raise CliError(f"{source} is disabled in the configuration ({setting})", EXIT_BAD_INPUT)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,  # the summary lines stay, the bar goes
            disable=not err_console.is_terminal,  # scripts get the summary only
        ) as bar:
            task_id = bar.add_task("starting", total=None)

            def report(done: int, total: int | None) -> None:
                bar.update(task_id, completed=done, total=total)

            runner = build_runner(runtime, clients, progress=report)
            jobs: list[JobType]
            if job is not None:
                jobs = [JOB_NAMES[job]]
            elif source == "anilist":
                jobs = ["anilist_enrich"]
            else:
                imported = await runner.store.get("mangadex_import")
                first = [] if imported.last_success_at and not imported.cursor else ["import"]
                jobs = [JOB_NAMES[j] for j in (*first, "poll", "chapters")]
            outcomes = []
            for name in jobs:
                bar.reset(task_id, description=name, total=None)
                outcomes.append(await _run_one(runner.run, name))
            return outcomes


async def _run_one(run: Callable[[JobType], Awaitable[JobOutcome]], job: JobType) -> JobOutcome:
    from mangahub.sources.models import SourceUnavailable
    from mangahub.sync.jobs import JobUnavailable
    from mangahub.sync.runner import JobFailed
    from mangahub.sync.state import LeaseHeld, LeaseLost

    try:
        outcome: JobOutcome = await run(job)
    except LeaseHeld as exc:
        raise CliError(str(exc), EXIT_CONFLICT) from None
    except LeaseLost as exc:
        raise CliError(str(exc), EXIT_CONFLICT) from None
    except JobFailed as exc:
        unreachable = isinstance(exc.__cause__, SourceUnavailable | JobUnavailable)
        raise CliError(str(exc), EXIT_UNAVAILABLE if unreachable else EXIT_ERROR) from None
    return outcome
