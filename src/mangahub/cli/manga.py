"""``mangahub manga get|search|genres|formats|statuses``: the catalog."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from mangahub.cli.common import GrpcOpt, JsonOpt, ServerOpt, api, endpoints
from mangahub.cli.output import (
    EXIT_BAD_INPUT,
    CliError,
    console,
    escape,
    fields,
    handle_errors,
    page_caption,
    print_json,
    table,
)
from mangahub.domain.enums import MangaFormat, MangaStatus, SortBy
from mangahub.domain.schemas import MAX_YEAR, MIN_YEAR

app = typer.Typer(help="Look up and search the catalog.", no_args_is_help=True)

MangaId = Annotated[int, typer.Argument(help="Manga id (see `manga search`).", min=1)]


class Via(StrEnum):
    HTTP = "http"
    GRPC = "grpc"


@app.command()
@handle_errors
def get(manga_id: MangaId, server: ServerOpt = None, json: JsonOpt = False) -> None:
    """Show one series in detail.

    Example: mangahub manga get 42
    """
    with api(server) as client:
        manga = client.call("GET", f"/api/manga/{manga_id}")
    if json:
        print_json(manga)
        return
    show_details(manga)


def show_details(manga: dict[str, Any]) -> None:
    rating = manga.get("average_rating")
    fields(
        f"#{manga['id']} {manga['title']}",
        [
            ("authors", manga.get("authors")),
            ("status", manga.get("status")),
            ("chapters", manga.get("total_chapters")),
            ("year", manga.get("year")),
            ("genres", manga.get("genres")),
            (
                "rating",
                f"{rating:.1f} ({manga.get('rating_count', 0)} ratings)" if rating else None,
            ),
            ("popularity", manga.get("popularity")),
            ("alt titles", manga.get("alt_titles")),
            ("mangadex", manga.get("mangadex_id")),
        ],
    )
    description = (manga.get("description") or "").strip()
    if description:
        console.print()
        console.print(escape(description[:600] + ("…" if len(description) > 600 else "")))


@app.command()
@handle_errors
def search(
    query: Annotated[
        str | None, typer.Argument(help="Words in title, alt title or author.")
    ] = None,
    genre: Annotated[
        list[str] | None,
        typer.Option("--genre", "-g", help="Genre (repeat for several: all must match)."),
    ] = None,
    status: Annotated[
        MangaStatus | None, typer.Option("--status", case_sensitive=False, help="Series status.")
    ] = None,
    format: Annotated[
        list[MangaFormat] | None,
        typer.Option(
            "--format", case_sensitive=False, help="Format (repeat for several: any matches)."
        ),
    ] = None,
    year: Annotated[
        int | None, typer.Option("--year", min=MIN_YEAR, max=MAX_YEAR, help="Start year.")
    ] = None,
    sort: Annotated[
        SortBy | None, typer.Option("--sort", case_sensitive=False, help="Sort key.")
    ] = None,
    order: Annotated[
        str | None, typer.Option("--order", help="asc or desc (default: desc, title: asc).")
    ] = None,
    page: Annotated[int, typer.Option("--page", min=1, help="Page number.")] = 1,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Results per page.")] = 20,
    via: Annotated[
        Via,
        typer.Option(
            "--via",
            case_sensitive=False,
            help="http: the local catalog with filters; grpc: federated search (local "
            "catalog, MangaDex, AniList) without filters.",
        ),
    ] = Via.HTTP,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="With --via grpc: local, mangadex or anilist (repeat)."),
    ] = None,
    server: ServerOpt = None,
    grpc: GrpcOpt = None,
    json: JsonOpt = False,
) -> None:
    """Search the catalog, with filters and a sort order.

    Examples:
      mangahub manga search "one piece"
      mangahub manga search --genre action --genre comedy --status ongoing --sort rating
      mangahub manga search --format manhwa --year 2018
      mangahub manga search "frieren" --via grpc --source local --source mangadex
    """
    if via is Via.GRPC:
        if genre or status or format or year or sort or order:
            raise CliError(
                "--genre, --status, --format, --year, --sort and --order need --via http",
                EXIT_BAD_INPUT,
            )
        if not query:
            raise CliError("a federated search needs a query", EXIT_BAD_INPUT)
        from mangahub.cli import grpc_search  # grpc loads only when asked for

        body = grpc_search.search(
            endpoints(server, grpc=grpc).grpc, query, page, limit, source or []
        )
        if json:
            print_json(body)
        else:
            show_federated(body)
        return
    if source:
        raise CliError("--source needs --via grpc", EXIT_BAD_INPUT)
    params: dict[str, Any] = {
        "q": query,
        "genres": ",".join(genre) if genre else None,
        "status": status.value if status else None,
        "format": ",".join(f.value for f in format) if format else None,
        "year": year,
        "sort_by": sort.value if sort else None,
        "order": order,
        "page": page,
        "page_size": limit,
    }
    with api(server) as client:
        body = client.call("GET", "/api/manga/advanced-search", params=params)
    if json:
        print_json(body)
        return
    show_summaries(body, "Search results")


@app.command()
@handle_errors
def genres(server: ServerOpt = None, json: JsonOpt = False) -> None:
    """List every genre (names for `manga search --genre`).

    Example: mangahub manga genres
    """
    with api(server) as client:
        body = client.call("GET", "/api/genres")
    if json:
        print_json(body)
        return
    table("Genres", ["name", "slug"], ((g["name"], g["slug"]) for g in body), f"{len(body)} genres")


@app.command()
@handle_errors
def formats(server: ServerOpt = None, json: JsonOpt = False) -> None:
    """List every format (values for `manga search --format`).

    Example: mangahub manga formats
    """
    _show_names(server, json, "/api/formats", "Formats")


@app.command()
@handle_errors
def statuses(server: ServerOpt = None, json: JsonOpt = False) -> None:
    """List every publication status (values for `manga search --status`).

    Example: mangahub manga statuses
    """
    _show_names(server, json, "/api/statuses", "Statuses")


def _show_names(server: str | None, json: bool, path: str, title: str) -> None:
    with api(server) as client:
        body = client.call("GET", path)
    if json:
        print_json(body)
        return
    table(title, ["name"], ((name,) for name in body), f"{len(body)} {title.lower()}")


def show_summaries(body: dict[str, Any], title: str) -> None:
    rows = [
        (
            m["id"],
            m["title"],
            m.get("authors"),
            m.get("status"),
            m.get("total_chapters"),
            f"{m['average_rating']:.1f}" if m.get("average_rating") else None,
            m.get("genres", [])[:4],
        )
        for m in body["data"]
    ]
    if not rows:
        console.print("no series found")
        return
    table(
        title,
        ["id", "title", "authors", "status", "chapters", "rating", "genres"],
        rows,
        page_caption(body),
    )


def show_federated(body: dict[str, Any]) -> None:
    reports = ", ".join(f"{s['name']}: {s['status']} ({s['results']})" for s in body["sources"])
    if not body["data"]:
        console.print(f"no series found — {reports}")
        return
    table(
        "Federated search",
        ["id", "title", "source", "authors", "status", "chapters", "rating"],
        (
            (
                m["id"],
                m["title"],
                m["source"],
                m["authors"],
                m["status"],
                m["total_chapters"],
                f"{m['average_rating']:.1f}" if m["average_rating"] else None,
            )
            for m in body["data"]
        ),
        f"{page_caption(body)} · {reports}",
    )


@app.command()
@handle_errors
def create(
    title: Annotated[str, typer.Argument(help="Series title.")],
    author: Annotated[list[str] | None, typer.Option("--author", help="Author (repeat).")] = None,
    alt_title: Annotated[
        list[str] | None, typer.Option("--alt-title", help="Alternative title (repeat).")
    ] = None,
    status: Annotated[
        MangaStatus, typer.Option("--status", case_sensitive=False, help="Series status.")
    ] = MangaStatus.ONGOING,
    chapters: Annotated[
        int | None, typer.Option("--chapters", min=0, help="Total chapters.")
    ] = None,
    year: Annotated[int | None, typer.Option("--year", help="Year of first publication.")] = None,
    description: Annotated[str, typer.Option("--description", help="Synopsis.")] = "",
    genre_id: Annotated[
        list[int] | None, typer.Option("--genre-id", help="Genre id (repeat).")
    ] = None,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add a series to the catalog (admin only).

    Example: mangahub manga create "My Series" --author "A. Writer" --chapters 12 --year 2024
    """
    body = {
        "title": title,
        "authors": author or [],
        "alt_titles": alt_title or [],
        "status": status.value,
        "total_chapters": chapters,
        "year": year,
        "description": description,
        "genre_ids": genre_id or [],
    }
    with api(server) as client:
        manga = client.call("POST", "/api/manga", json=body, auth=True)
    if json:
        print_json(manga)
    else:
        console.print(f"[green]✓[/green] created #{manga['id']} {escape(manga['title'])}")
