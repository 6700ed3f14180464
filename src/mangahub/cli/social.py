"""``mangahub rating rate`` and ``mangahub comment create|list``."""

from __future__ import annotations

from typing import Annotated

import typer

from mangahub.cli.common import JsonOpt, ServerOpt, api
from mangahub.cli.output import console, escape, handle_errors, page_caption, print_json, table

rating_app = typer.Typer(help="Rate series.", no_args_is_help=True)
comment_app = typer.Typer(help="Read and write comments on a series.", no_args_is_help=True)

MangaId = Annotated[int, typer.Argument(help="Manga id.", min=1)]


@rating_app.command()
@handle_errors
def rate(
    manga_id: MangaId,
    score: Annotated[int, typer.Argument(help="Score from 1 to 10.")],
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """Rate a series from 1 to 10 (rating again replaces your score).

    Example: mangahub rating rate 42 9
    """
    with api(server) as client:
        rating = client.call(
            "PUT", f"/api/manga/{manga_id}/rating", json={"score": score}, auth=True
        )
    if json:
        print_json(rating)
    else:
        console.print(f"[green]✓[/green] rated #{manga_id}: {rating['score']}/10")


@comment_app.command()
@handle_errors
def create(
    manga_id: MangaId,
    content: Annotated[str, typer.Argument(help="Comment text, 1–2000 characters.")],
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """Comment on a series.

    Example: mangahub comment create 42 "The art in chapter 12!"
    """
    with api(server) as client:
        comment = client.call(
            "POST", f"/api/manga/{manga_id}/comments", json={"content": content}, auth=True
        )
    if json:
        print_json(comment)
    else:
        console.print(f"[green]✓[/green] comment #{comment['id']} posted on #{manga_id}")


@comment_app.command("list")
@handle_errors
def list_comments(
    manga_id: MangaId,
    page: Annotated[int, typer.Option("--page", min=1)] = 1,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 20,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """List a series' comments, newest first.

    Example: mangahub comment list 42 --limit 5
    """
    with api(server) as client:
        body = client.call(
            "GET",
            f"/api/manga/{manga_id}/comments",
            params={"page": page, "page_size": limit},
            auth=True,
        )
    if json:
        print_json(body)
        return
    if not body["data"]:
        console.print(f"no comments on #{manga_id} yet")
        return
    table(
        f"Comments on #{manga_id}",
        ["id", "user", "when", "comment"],
        ((c["id"], c["username"], c["created_at"], escape(c["content"])) for c in body["data"]),
        page_caption(body),
    )
