"""``mangahub auth register|login|logout|status``."""

from __future__ import annotations

import getpass
import time
from typing import Annotated

import typer

from mangahub.cli.api import token_expiry
from mangahub.cli.common import JsonOpt, ServerOpt, api
from mangahub.cli.credentials import Credentials
from mangahub.cli.output import (
    EXIT_AUTH,
    EXIT_BAD_INPUT,
    CliError,
    console,
    fields,
    handle_errors,
    print_json,
)
from mangahub.cli.sync import stop_daemon_of

app = typer.Typer(help="Create an account, log in and out.", no_args_is_help=True)

PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password",
        "-p",
        envvar="MANGAHUB_PASSWORD",
        help="Password (default: $MANGAHUB_PASSWORD, else asked without echo).",
        show_default=False,
    ),
]


def _password(value: str | None, confirm: bool = False) -> str:
    if value:
        return value
    try:
        first = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Repeat password: ") != first:
            raise CliError("passwords do not match", EXIT_BAD_INPUT)
    except EOFError:
        raise CliError("no password given (use --password or MANGAHUB_PASSWORD)", 2) from None
    return first


@app.command()
@handle_errors
def register(
    username: Annotated[str, typer.Argument(help="3–50 characters: letters, digits, _ . -")],
    email: Annotated[str, typer.Option("--email", "-e", help="Your e-mail address.")],
    password: PasswordOpt = None,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create an account (then run `auth login`).

    Example: mangahub auth register alice --email alice@example.com
    """
    with api(server) as client:
        user = client.call(
            "POST",
            "/api/auth/register",
            json={"username": username, "email": email, "password": _password(password, True)},
        )
    if json:
        print_json(user)
    else:
        console.print(f"[green]✓[/green] account [bold]{user['username']}[/bold] created")


@app.command()
@handle_errors
def login(
    username: Annotated[str, typer.Argument(help="Username or e-mail address.")],
    password: PasswordOpt = None,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """Log in and keep the tokens (OS keyring, or a 0600 file without one).

    Example: mangahub auth login alice --server http://manga.example:8084
    """
    with api(server) as client:
        body = client.call(
            "POST",
            "/api/auth/login",
            json={"username": username, "password": _password(password)},
        )
        creds = Credentials(body["access_token"], body["refresh_token"], body["user"]["username"])
        where = client.store.save(client.server, creds)
        location = client.store.location() if where == "keyring" else str(client.store.file)
    if json:
        print_json({"user": body["user"], "server": client.server, "stored_in": where})
    else:
        console.print(
            f"[green]✓[/green] logged in to {client.server} as [bold]{creds.username}[/bold] "
            f"(tokens in {location})"
        )


@app.command()
@handle_errors
def logout(server: ServerOpt = None, json: JsonOpt = False) -> None:
    """Revoke the refresh token on the server, forget both tokens and stop the sync
    daemon connected to that server.

    Example: mangahub auth logout
    """
    with api(server) as client:
        creds = client.store.load(client.server)
        revoked = False
        daemon: int | None = None
        try:
            # First, so that it stops using (and refreshing) the tokens being revoked.
            daemon = stop_daemon_of(client.server)
            if creds is not None:
                client.call("POST", "/api/auth/revoke", json={"refresh_token": creds.refresh_token})
                revoked = True
        finally:
            # Forget them even when the server is unreachable: logging out is local first.
            if creds is not None:
                client.store.delete(client.server)
    if json:
        print_json(
            {
                "server": client.server,
                "logged_out": creds is not None,
                "revoked": revoked,
                "sync_daemon_stopped": daemon,
            }
        )
        return
    if creds is None:
        console.print(f"not logged in to {client.server}")
    else:
        console.print(f"[green]✓[/green] logged out of {client.server}")
    if daemon is not None:
        console.print(f"[green]✓[/green] sync daemon {daemon} stopped")


@app.command()
@handle_errors
def status(server: ServerOpt = None, json: JsonOpt = False) -> None:
    """Who you are logged in as, and where the tokens are kept.

    Example: mangahub auth status --json
    """
    with api(server) as client:
        creds = client.store.load(client.server)
        if creds is None:
            info: dict[str, object] = {"server": client.server, "logged_in": False}
        else:
            user = client.call("GET", "/api/users/me", auth=True)
            creds = client.credentials()  # possibly refreshed by the call
            exp = token_expiry(creds.access_token)
            info = {
                "server": client.server,
                "logged_in": True,
                "user": user,
                "stored_in": client.store.backend,
                "access_token_expires_in": int(exp - time.time()) if exp else None,
            }
        location = client.store.location()
    if json:
        print_json(info)
    elif not info["logged_in"]:
        console.print(f"not logged in to {client.server} — run `mangahub auth login`")
    if not info["logged_in"]:
        raise typer.Exit(EXIT_AUTH)
    if json:
        return
    user = info["user"]
    assert isinstance(user, dict)
    fields(
        "MangaHub session",
        [
            ("server", client.server),
            ("user", user["username"]),
            ("email", user["email"]),
            ("role", user["role"]),
            ("tokens in", location),
            ("access token", f"expires in {info['access_token_expires_in']} s"),
        ],
    )
