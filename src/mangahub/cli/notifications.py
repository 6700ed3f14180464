"""``mangahub notifications list|read``: the stored notifications over HTTP."""

from __future__ import annotations

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

app = typer.Typer(help="New-chapter and catalog notifications.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_notifications(
    unread: Annotated[bool, typer.Option("--unread", metavar="", help="Only unread ones.")] = False,
    page: Annotated[int, typer.Option("--page", min=1)] = 1,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 20,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """List your notifications, newest first.

    Example: mangahub notifications list --unread
    """
    params = {"unread": "true" if unread else None, "page": page, "page_size": limit}
    with api(server) as client:
        body = client.call("GET", "/api/notifications", params=params, auth=True)
    if json:
        print_json(body)
        return
    if not body["data"]:
        console.print("no notifications" + (" unread" if unread else ""))
        return
    table(
        "Notifications",
        ["id", "", "kind", "manga", "message", "when"],
        (
            (
                n["id"],
                "" if n["read"] else "●",
                n["kind"],
                n.get("manga_id"),
                n["message"],
                n["created_at"],
            )
            for n in body["data"]
        ),
        page_caption(body),
    )


@app.command()
@handle_errors
def read(
    notification_id: Annotated[
        int | None, typer.Argument(help="Notification id (omit with --all).", min=1)
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", metavar="", help="Mark every notification read.")
    ] = False,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """Mark a notification (or all of them) read.

    Examples:
      mangahub notifications read 17
      mangahub notifications read --all
    """
    if (notification_id is None) == (not all_):
        raise CliError("give a notification id or --all (not both)", EXIT_BAD_INPUT)
    with api(server) as client:
        if all_:
            body = client.call("POST", "/api/notifications/read-all", auth=True)
        else:
            body = client.call("POST", f"/api/notifications/{notification_id}/read", auth=True)
    if json:
        print_json(body)
    elif all_:
        console.print(f"[green]✓[/green] {body['updated']} notification(s) marked read")
    else:
        console.print(f"[green]✓[/green] notification {notification_id} marked read")
