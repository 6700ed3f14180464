"""``mangahub``: run the servers, manage the database, and the client commands."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from mangahub.cli import auth as auth_cli
from mangahub.cli import chat as chat_cli
from mangahub.cli import library as library_cli
from mangahub.cli import manga as manga_cli
from mangahub.cli import notifications as notifications_cli
from mangahub.cli import progress as progress_cli
from mangahub.cli import social as social_cli
from mangahub.cli import sources as sources_cli
from mangahub.cli import sync as sync_cli
from mangahub.cli import udp as udp_cli

if TYPE_CHECKING:
    from mangahub.app import Runtime
    from mangahub.config import Settings
    from mangahub.servers import Part

# The server side (storage, servers, services) is imported inside the server-side
# commands only: client commands start in a fraction of the time without it.

T = TypeVar("T")

app = typer.Typer(
    name="mangahub",
    help="MangaHub: a self-hosted manga tracker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database maintenance (runs server-side).", no_args_is_help=True)
app.add_typer(db_app, name="db")
users_app = typer.Typer(help="User accounts (runs server-side).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(auth_cli.app, name="auth")
app.add_typer(manga_cli.app, name="manga")
app.add_typer(library_cli.app, name="library")
app.add_typer(progress_cli.app, name="progress")
app.add_typer(social_cli.rating_app, name="rating")
app.add_typer(social_cli.comment_app, name="comment")
app.add_typer(notifications_cli.app, name="notifications")
app.add_typer(udp_cli.app, name="udp")
app.add_typer(sync_cli.app, name="sync")
app.add_typer(chat_cli.app, name="chat")
app.add_typer(sources_cli.app, name="sources")


def _print_version(value: bool) -> None:
    if value:
        from mangahub import __version__

        typer.echo(f"mangahub {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            metavar="",
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """MangaHub: a self-hosted manga tracker."""


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (default: ./mangahub.toml if present)."),
]


def _settings(config: Path | None) -> Settings:
    from mangahub.config import load_settings

    try:
        return load_settings(config)
    except (FileNotFoundError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when available (faster sockets), plain asyncio otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(coro)
    return uvloop.run(coro)


@app.command()
def serve(
    part: Annotated[
        str | None,
        typer.Argument(help="Run one part only: api, tcp, udp (with the trigger), grpc or sync."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run MangaHub's servers in one process (all parts, or the one named)."""
    from mangahub.servers import PARTS

    settings = _settings(config)
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if part is not None and part not in PARTS:
        typer.secho(f"error: part {part!r} is unknown; choose from {', '.join(PARTS)}", err=True)
        raise typer.Exit(2)
    parts: tuple[Part, ...] = (part,) if part else PARTS
    try:
        _run(_serve(settings, parts))
    except OSError as exc:
        # Above all "address already in use": one line the operator can act on.
        typer.secho(f"error: cannot start: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


def _show_admin_password(runtime: Runtime) -> None:
    """Once serving: the generated admin password (first start), or where it is kept
    while its file exists."""
    from mangahub.app import admin_password_file

    kept = admin_password_file(runtime.settings)
    password = runtime.generated_admin_password
    if password is not None:
        print(
            f"Created user 'admin' with generated password: {password} "
            f"(also in {kept}, readable by you only; delete it once stored elsewhere)",
            flush=True,
        )
    elif kept.is_file():
        print(f"The password of user 'admin' is kept in {kept}; delete it once stored", flush=True)


async def _serve(settings: Settings, parts: tuple[Part, ...]) -> None:
    from mangahub.app import build_runtime
    from mangahub.servers import run_servers

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with (
        build_runtime(settings) as runtime,
        run_servers(runtime, parts, warm=True) as running,
    ):
        for server in running.servers:
            host, port = server.address
            # One parseable line per listener: scripts (and tests using port 0) read these.
            # A part without a socket (sync) reports port 0: it runs, it does not listen.
            said = f"listening on {host}:{port}" if port else "running"
            print(f"mangahub {server.name} {said}", flush=True)
        _show_admin_password(runtime)
        await stop.wait()
        print("mangahub shutting down", flush=True)


@users_app.command("reset-password")
def users_reset_password(
    name: Annotated[str, typer.Argument(help="The user's name (e.g. admin).")],
    from_config: Annotated[
        bool,
        typer.Option(
            "--password-from-config",
            metavar="",
            help="Use the configured admin_password instead of generating one.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Set a new password for NAME (printed once) and end all of NAME's sessions."""
    from mangahub.app import build_runtime
    from mangahub.domain.errors import MangaHubError

    settings = _settings(config)
    given = None
    if from_config:
        if settings.admin_password is None:
            typer.secho("error: admin_password is not set", fg="red", err=True)
            raise typer.Exit(2)
        given = settings.admin_password.get_secret_value()

    async def work() -> str:
        async with build_runtime(settings, bootstrap=False) as runtime:
            return await runtime.auth.reset_password(name, given)

    try:
        password = _run(work())
    except MangaHubError as exc:
        typer.secho(f"error: {exc.message}", fg="red", err=True)
        raise typer.Exit(1) from None
    if given is None:
        typer.echo(f"New password of {name}: {password}")
    else:
        typer.echo(f"Password of {name} set from admin_password")
    typer.echo("Every session of the user was ended.")


@db_app.command("migrate")
def db_migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the schema to the newest version."""
    from mangahub.app import build_runtime

    settings = _settings(config)

    async def work() -> None:
        async with build_runtime(settings.model_copy(update={"seed_catalog": False})):
            pass

    _run(work())
    typer.echo("database is up to date")


@db_app.command("seed")
def db_seed(
    config: ConfigOption = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="JSON list of series records to import instead of the bundled catalog."
        ),
    ] = None,
) -> None:
    """Load the bundled catalog (idempotent), or import series from a JSON file."""
    from mangahub.app import build_runtime
    from mangahub.catalog.records import SeriesRecord

    settings = _settings(config)

    async def work() -> int:
        async with build_runtime(settings.model_copy(update={"seed_catalog": False})) as rt:
            if file is None:
                return await rt.catalog.seed_bundled()
            records = [SeriesRecord.from_json(item) for item in json.loads(file.read_text())]
            return await rt.catalog.import_series(records)

    count = _run(work())
    typer.echo(f"{count} series added or updated")
