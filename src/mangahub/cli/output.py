"""How the CLI talks back: Rich tables for people, JSON on stdout for scripts, and
one-line errors on stderr that carry their exit code (no tracebacks)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, ParamSpec, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

P = ParamSpec("P")
R = TypeVar("R")

# Exit codes, one per kind of failure, so scripts can branch on them (docs/cli.md).
EXIT_ERROR: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_AUTH: Final = 3
EXIT_NOT_FOUND: Final = 4
EXIT_CONFLICT: Final = 5
EXIT_UNAVAILABLE: Final = 6

EXIT_BY_CODE: Final = {
    "bad_request": EXIT_BAD_INPUT,
    "validation_error": EXIT_BAD_INPUT,
    "unauthorized": EXIT_AUTH,
    "forbidden": EXIT_AUTH,
    "not_found": EXIT_NOT_FOUND,
    "conflict": EXIT_CONFLICT,
    "rate_limited": EXIT_UNAVAILABLE,
    "unavailable": EXIT_UNAVAILABLE,
}

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(Exception):
    """A failure shown to the user as ``error: <message>`` with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn :class:`CliError` (and Ctrl+C) into a one-line message and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CliError as exc:
            fail_line(exc.message)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            # A bug or an unforeseen failure: still one line; MANGAHUB_DEBUG=1 shows it all.
            if os.environ.get("MANGAHUB_DEBUG"):
                raise
            fail_line(f"unexpected {type(exc).__name__}: {exc} (MANGAHUB_DEBUG=1 for details)")
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper


def fail_line(message: str) -> None:
    # One line, whatever the message held: scripts read stderr line by line.
    text = " ".join(message.split())
    err_console.print(f"[red]error:[/red] {escape(text)}")


def info(message: str) -> None:
    """A remark for people (stderr, so ``--json`` output stays clean)."""
    err_console.print(message)


def escape(text: str) -> str:
    return text.replace("[", r"\[")


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def print_json_line(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data).decode() + "\n")
    sys.stdout.flush()


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = ""
) -> None:
    grid = Table(title=title, caption=caption or None, header_style="bold cyan")
    for name in columns:
        grid.add_column(name, overflow="fold")
    for row in rows:
        grid.add_row(*(cell(value) for value in row))
    console.print(grid)


def fields(title: str, pairs: Iterable[tuple[str, Any]]) -> None:
    """A record as aligned ``key  value`` lines."""
    grid = Table(title=title, show_header=False, box=None, title_justify="left")
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in pairs:
        grid.add_row(key, cell(value))
    console.print(grid)


def cell(value: Any) -> str | Text:
    """A table cell: styled :class:`Text` as it is, anything else through :func:`fmt`."""
    return value if isinstance(value, Text) else fmt(value)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value) or "-"
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        return value[:19].replace("T", " ")  # ISO timestamp, to the second
    return escape(str(value))


def page_caption(body: dict[str, Any]) -> str:
    page, size, total = body.get("page", 1), body.get("page_size", 0), body.get("total", 0)
    pages = max(1, -(-int(total) // max(1, int(size or 1))))
    return f"page {page} of {pages} · {total} total"
