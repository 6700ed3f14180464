"""``mangahub library list|add|update|remove|import|export``: your reading list."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mangahub.cli.common import JsonOpt, ServerOpt, api
from mangahub.cli.output import (
    EXIT_BAD_INPUT,
    CliError,
    console,
    handle_errors,
    page_caption,
    print_json,
    table,
)
from mangahub.domain.enums import ReadingStatus

app = typer.Typer(help="Your library: the series you follow.", no_args_is_help=True)

MangaId = Annotated[int, typer.Argument(help="Manga id.", min=1)]
StatusOpt = Annotated[
    ReadingStatus | None,
    typer.Option("--status", case_sensitive=False, help="Reading status."),
]


@app.command("list")
@handle_errors
def list_entries(
    page: Annotated[int, typer.Option("--page", min=1)] = 1,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 50,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the series in your library.

    Example: mangahub library list --json
    """
    with api(server) as client:
        body = client.call(
            "GET", "/api/library", params={"page": page, "page_size": limit}, auth=True
        )
    if json:
        print_json(body)
        return
    if not body["data"]:
        console.print("your library is empty — add a series with `mangahub library add ID`")
        return
    table(
        "Library",
        ["id", "title", "status", "chapters", "added"],
        (
            (
                e["manga_id"],
                e["manga"]["title"],
                e["status"],
                e["manga"].get("total_chapters"),
                e["added_at"],
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
        ReadingStatus, typer.Option("--status", case_sensitive=False, help="New reading status.")
    ],
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """Change a library entry's reading status.

    Example: mangahub library update 42 --status completed
    """
    with api(server) as client:
        entry = client.call(
            "PATCH", f"/api/library/{manga_id}", json={"status": status.value}, auth=True
        )
    if json:
        print_json(entry)
    else:
        console.print(f"[green]✓[/green] #{manga_id} is now {entry['status']}")


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
