"""``mangahub library list|add|update|remove``: your reading list."""

from __future__ import annotations

from typing import Annotated

import typer

from mangahub.cli.common import JsonOpt, ServerOpt, api
from mangahub.cli.output import console, handle_errors, page_caption, print_json, table
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
