"""``mangahub library list|add|update|remove|import|export``: your reading list (one
entry per series: status, progress, score, dates, notes)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from mangahub.cli.common import JsonOpt, ServerOpt, api
from mangahub.cli.output import (
    EXIT_BAD_INPUT,
    CliError,
    console,
    escape,
    fmt,
    handle_errors,
    page_caption,
    print_json,
    table,
)
from mangahub.domain.enums import EntrySort, ReadingStatus

app = typer.Typer(help="Your library: the series you follow.", no_args_is_help=True)

MangaId = Annotated[int, typer.Argument(help="Manga id.", min=1)]
StatusOpt = Annotated[
    ReadingStatus | None,
    typer.Option("--status", case_sensitive=False, help="Reading status."),
]


def progress_text(entry: dict[str, Any]) -> str:
    """``"12.5 / 95"``: the chapter reached over the series' chapters (``?`` if unknown)."""
    total = entry.get("manga", {}).get("total_chapters")
    return f"{fmt(float(entry['chapter']))} / {'?' if total is None else total}"


@app.command("list")
@handle_errors
def list_entries(
    status: StatusOpt = None,
    sort: Annotated[
        EntrySort,
        typer.Option("--sort", case_sensitive=False, help="Order (title ascends, others descend)."),
    ] = EntrySort.UPDATED,
    query: Annotated[str | None, typer.Option("--query", "-q", help="Title contains.")] = None,
    page: Annotated[int, typer.Option("--page", min=1)] = 1,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 50,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the series in your library with your progress and score.

    Examples:
      mangahub library list --status reading
      mangahub library list --sort score --json
    """
    params: dict[str, object] = {"page": page, "page_size": limit, "sort_by": sort.value}
    if status is not None:
        params["status"] = status.value
    if query:
        params["q"] = query
    with api(server) as client:
        body = client.call("GET", "/api/library", params=params, auth=True)
    if json:
        print_json(body)
        return
    if not body["data"]:
        if status is None and not query:
            console.print("your library is empty — add a series with `mangahub library add ID`")
        else:
            console.print("no entry matches")
        return
    table(
        "Library",
        ["id", "title", "status", "progress", "score", "updated"],
        (
            (
                e["manga_id"],
                e["manga"]["title"],
                e["status"],
                progress_text(e),
                e.get("score"),
                e["updated_at"],
            )
            for e in body["data"]
        ),
        page_caption(body),
    )


@app.command()
@handle_errors
def add(
    manga_id: MangaId, status: StatusOpt = None, server: ServerOpt = None, json: JsonOpt = False
) -> None:
    """Add a series to your library (default status: plan_to_read).

    Example: mangahub library add 42 --status reading
    """
    body: dict[str, object] = {"manga_id": manga_id}
    if status is not None:
        body["status"] = status.value
    with api(server) as client:
        entry = client.call("POST", "/api/library", json=body, auth=True)
    if json:
        print_json(entry)
    else:
        console.print(
            f"[green]✓[/green] added #{manga_id} {entry['manga']['title']} ({entry['status']})"
        )


@app.command()
@handle_errors
def update(
    manga_id: MangaId,
    status: Annotated[
        ReadingStatus | None,
        typer.Option("--status", case_sensitive=False, help="Reading status."),
    ] = None,
    chapter: Annotated[
        float | None, typer.Option("--chapter", min=0, help="Chapter reached.")
    ] = None,
    volume: Annotated[int | None, typer.Option("--volume", min=0, help="Volume reached.")] = None,
    score: Annotated[int | None, typer.Option("--score", min=1, max=10, help="1-10.")] = None,
    clear_score: Annotated[bool, typer.Option("--clear-score", help="Remove the score.")] = False,
    started: Annotated[
        str | None, typer.Option("--started", help="Start date, YYYY-MM-DD ('' clears).")
    ] = None,
    finished: Annotated[
        str | None, typer.Option("--finished", help="Finish date, YYYY-MM-DD ('' clears).")
    ] = None,
    rereads: Annotated[int | None, typer.Option("--rereads", min=0, help="Times re-read.")] = None,
    rereading: Annotated[
        bool | None, typer.Option("--rereading/--not-rereading", help="Re-reading it now.")
    ] = None,
    notes: Annotated[str | None, typer.Option("--notes", help="Private notes.")] = None,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """Change any field of a library entry; the others stay.

    Examples:
      mangahub library update 42 --status completed --score 9
      mangahub library update 42 --chapter 12.5 --volume 2 --notes "great arc"
    """
    changes: dict[str, object] = {
        name: value
        for name, value in (
            ("status", None if status is None else status.value),
            ("chapter", chapter),
            ("volume", volume),
            ("score", score),
            ("rereads", rereads),
            ("rereading", rereading),
            ("notes", notes),
        )
        if value is not None
    }
    if clear_score:
        if score is not None:
            raise CliError("give --score or --clear-score, not both", EXIT_BAD_INPUT)
        changes["score"] = None
    for name, value in (("started_on", started), ("finished_on", finished)):
        if value is not None:
            changes[name] = _date(value, name) if value else None
    if not changes:
        raise CliError("nothing to change: give at least one option", EXIT_BAD_INPUT)
    with api(server) as client:
        entry = client.call("PATCH", f"/api/library/{manga_id}", json=changes, auth=True)
    if json:
        print_json(entry)
    else:
        score_text = "" if entry.get("score") is None else f", score {entry['score']}"
        console.print(
            f"[green]✓[/green] #{manga_id} {escape(entry['manga']['title'])}: {entry['status']}, "
            f"{progress_text(entry)}{score_text}"
        )


def _date(value: str, name: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise CliError(
            f"{name} must be a date like 2024-03-31, not {value!r}", EXIT_BAD_INPUT
        ) from None


@app.command()
@handle_errors
def remove(manga_id: MangaId, server: ServerOpt = None, json: JsonOpt = False) -> None:
    """Remove a series from your library.

    Example: mangahub library remove 42
    """
    with api(server) as client:
        client.call("DELETE", f"/api/library/{manga_id}", auth=True)
    if json:
        print_json({"manga_id": manga_id, "removed": True})
    else:
        console.print(f"[green]✓[/green] removed #{manga_id} from your library")


@app.command("import")
@handle_errors
def import_list(
    file: Annotated[
        Path, typer.Argument(help="MAL XML (.xml or .xml.gz), AniList JSON or our JSON export.")
    ],
    mode: Annotated[
        str, typer.Option("--mode", help="merge (keep the newer entry) or replace.")
    ] = "merge",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report without writing.")] = False,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """Import a reading list file into your library (all or nothing).

    Example: mangahub library import mangalist_1612345678_-_123456.xml.gz --dry-run
    """
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}", EXIT_BAD_INPUT) from None
    params = {"mode": mode, "dry_run": "true" if dry_run else None}
    with api(server) as client:
        report = client.call_bytes(
            "POST", "/api/library/import", content=data, params=params
        ).json()
    if json:
        print_json(report)
        return
    verb = "would import" if report["dry_run"] else "imported"
    console.print(
        f"[green]✓[/green] {verb} {report['imported']} new, {report['updated']} updated, "
        f"{report['created_series']} series created, {report['removed']} removed, "
        f"{len(report['skipped'])} skipped ({report['format']} file)"
    )
    for skip in report["skipped"]:
        console.print(f"  skipped {skip['title']}: {skip['reason']}")


@app.command("export")
@handle_errors
def export_list(
    output: Annotated[
        Path | None, typer.Argument(help="File to write (default: the server's file name).")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="mal (MAL XML) or json.")] = "mal",
    server: ServerOpt = None,
) -> None:
    """Export your library as MAL XML (MyAnimeList imports it) or JSON (every field).

    Example: mangahub library export --format json my-list.json
    """
    with api(server) as client:
        response = client.call_bytes("GET", "/api/library/export", params={"format": format})
    target = output or Path(_attachment_name(response.headers.get("content-disposition", "")))
    try:
        target.write_bytes(response.content)
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror or exc}") from None
    console.print(f"[green]✓[/green] wrote {target} ({len(response.content)} bytes)")


def _attachment_name(disposition: str) -> str:
    name = disposition.partition('filename="')[2].partition('"')[0]
    # Only a bare file name from the server: never a path.
    return Path(name).name or "mangahub-list"
