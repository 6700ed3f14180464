"""``mangahub chat join <manga_id>``: an interactive chat room over WebSocket.

Incoming messages are printed above the prompt while you type: stdin is read by a
thread (``input()`` with line editing on a terminal) and handed to the event loop,
which also reads the socket; an incoming line erases the prompt line, prints, and
draws the prompt again with what you had typed so far. Commands: ``/who``,
``/leave``, ``/quit``, ``/help``.

A chat session lasts as long as the access token that opened it, so the room renews
it in place: ``renew_after(expires_in)`` seconds after each ``auth_ok`` it sends
``auth`` with a fresh token from its token source (``Api.access_token``, which
refreshes a token close to expiry; blocking, so it runs in a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import termios
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Final

import orjson
import typer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from mangahub.cli.api import Api
from mangahub.cli.common import ServerOpt, endpoints
from mangahub.cli.output import (
    EXIT_AUTH,
    EXIT_BY_CODE,
    EXIT_ERROR,
    EXIT_UNAVAILABLE,
    CliError,
    console,
    escape,
    handle_errors,
)
from mangahub.security.tokens import RENEW_FLOOR, renew_after

try:  # line editing for input(), and what has been typed so far, to redraw it
    import readline

    typed: Callable[[], str] = readline.get_line_buffer
except ImportError:  # pragma: no cover - readline ships with CPython on Unix

    def typed() -> str:
        return ""


app = typer.Typer(help="Chat rooms, one per series.", no_args_is_help=True)

HELP: Final = "commands: /who (who is here), /leave (leave the room), /quit, /help"
OPEN_TIMEOUT: Final = 10.0
INPUT_QUEUE: Final = 256

TokenSource = Callable[[], str]
"""A usable access token, blocking (``Api.access_token``): called in a thread."""


class Room:
    """One joined room: renders what arrives and sends what is typed."""

    def __init__(self, ws: ClientConnection, room_id: int, interactive: bool) -> None:
        self.ws = ws
        self.room_id = room_id
        self.interactive = interactive
        self.users: list[str] = []
        self.prompt = f"#{room_id}> "
        self.prompting = False
        """Set once input() shows the prompt: from then on, output redraws it."""
        self.confirmations: asyncio.Queue[tuple[float, float]] = asyncio.Queue()
        """Each ``auth_ok``: (loop time it arrived, its ``expires_in``)."""

    # -- output -------------------------------------------------------------------------------

    def say(self, markup: str) -> None:
        """Print a line above the prompt, then draw the prompt again."""
        redraw = self.interactive and self.prompting
        if redraw:
            sys.stdout.write("\r\x1b[2K")  # erase the prompt line
        console.print(markup)
        if redraw:
            sys.stdout.write(self.prompt + typed())
            sys.stdout.flush()

    def render(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "chat":
            self.say(_chat_line(message))
        elif kind == "history":
            for item in message.get("messages", []):
                self.say(f"[dim]{_chat_line(item)}[/dim]")
        elif kind == "presence":
            self.users = [str(u) for u in message.get("users", [])]
        elif kind == "system":
            self.say(f"[italic cyan]* {escape(str(message.get('content', '')))}[/italic cyan]")
        elif kind == "error":
            self.say(f"[red]error:[/red] {escape(str(message.get('message', '')))}")
        elif kind == "auth_ok":
            expires_in = message.get("expires_in")
            if isinstance(expires_in, int | float):
                now = asyncio.get_running_loop().time()
                self.confirmations.put_nowait((now, float(expires_in)))

    # -- the conversation -----------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def join(self) -> None:
        """Until the room's history and then its presence arrived: a ``/who`` piped in
        with the join is answered only after, so it sees who is there."""
        await self.send({"type": "join", "room_id": self.room_id})
        history = False
        async with asyncio.timeout(OPEN_TIMEOUT):
            while True:
                message = await self._receive()
                kind = message.get("type")
                if kind == "error":
                    code = str(message.get("code"))
                    raise CliError(str(message.get("message")), EXIT_BY_CODE.get(code, 1))
                self.render(message)
                history = history or kind == "history"
                if history and kind == "presence" and message.get("room_id") == self.room_id:
                    return

    async def _receive(self) -> dict[str, Any]:
        raw = await self.ws.recv()
        message = orjson.loads(raw)
        return message if isinstance(message, dict) else {}

    async def incoming(self) -> None:
        """Until the connection closes. An ``unauthorized`` error is shown and reading
        goes on: after an expiry the server's close follows (with its reason), after a
        refused renewal the session is still open."""
        while True:
            message = await self._receive()
            if message.get("type") == "ping":
                await self.send({"type": "pong"})
            else:
                self.render(message)

    async def keep_renewed(self, token_source: TokenSource) -> None:
        """Renew the session at ``renew_after(expires_in)`` after each ``auth_ok``; a
        renewal that gets no answer is tried again halfway to the session's end. Ends
        when the connection does."""
        loop = asyncio.get_running_loop()
        confirmed_at, expires_in = await self.confirmations.get()
        while True:
            ends_at = confirmed_at + expires_in
            renew_at = confirmed_at + renew_after(expires_in)
            while True:
                try:
                    async with asyncio.timeout_at(renew_at):
                        confirmed_at, expires_in = await self.confirmations.get()
                    break  # renewed (or confirmed anew): count from this answer
                except TimeoutError:
                    pass
                try:
                    token = await asyncio.to_thread(token_source)
                    await self.send({"type": "auth", "token": token})
                except ConnectionClosed:
                    return  # incoming() reports why
                except Exception as exc:  # e.g. the refresh could not reach the server
                    why = exc.message if isinstance(exc, CliError) else str(exc)
                    self.say(f"[yellow]could not renew the chat session:[/yellow] {escape(why)}")
                renew_at = loop.time() + max(RENEW_FLOOR, (ends_at - loop.time()) / 2)

    async def outgoing(self, lines: asyncio.Queue[str | None]) -> None:
        """Returns when the user leaves (``/leave``, ``/quit``, end of input)."""
        while True:
            line = await lines.get()
            if line is None or line.strip() in ("/quit", "/exit"):
                return
            text = line.rstrip("\n")
            command = text.strip()
            if command == "/leave":
                await self.send({"type": "leave", "room_id": self.room_id})
                return
            if command == "/who":
                users = ", ".join(self.users) or "nobody"
                self.say(f"[bold]in room #{self.room_id}:[/bold] {escape(users)}")
            elif command == "/help":
                self.say(HELP)
            elif command.startswith("/"):
                self.say(f"unknown command {escape(command)} — {HELP}")
            elif command:
                await self.send({"type": "chat", "room_id": self.room_id, "content": text})


def _chat_line(message: dict[str, Any]) -> str:
    when = str(message.get("timestamp", ""))[11:16]
    user = escape(str(message.get("username", "?")))
    return f"[dim]{when}[/dim] [bold]{user}[/bold]: {escape(str(message.get('content', '')))}"


def _read_stdin(
    loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None], prompt: str | None
) -> None:
    """Blocking reads in a thread; each line goes to the loop (None at end of input).
    ``prompt``: read with ``input()`` (a terminal), else plain lines (a pipe)."""
    if prompt is None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(_offer, lines, line)
    else:
        while True:
            try:
                line = input(prompt)
            except (EOFError, OSError, ValueError):
                break
            loop.call_soon_threadsafe(_offer, lines, line)
    loop.call_soon_threadsafe(_offer, lines, None)


def _offer(lines: asyncio.Queue[str | None], line: str | None) -> None:
    if line is None or not lines.full():
        lines.put_nowait(line)


async def _chat(url: str, token_source: TokenSource, room_id: int) -> None:
    token = await asyncio.to_thread(token_source)
    try:
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=OPEN_TIMEOUT,
            max_size=1 << 20,
        )
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        raise CliError(f"cannot reach MangaHub chat at {url} ({exc})", EXIT_UNAVAILABLE) from None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    renewer: asyncio.Task[None] | None = None
    try:
        room = Room(ws, room_id, sys.stdin.isatty() and sys.stdout.isatty())
        try:
            await room.join()
        except ConnectionClosed as exc:
            raise CliError(_closed_reason(exc), EXIT_AUTH) from None
        renewer = asyncio.create_task(room.keep_renewed(token_source))
        console.print(f"[green]joined room #{room_id}[/green] — {HELP}")
        lines: asyncio.Queue[str | None] = asyncio.Queue(INPUT_QUEUE)
        prompt = room.prompt if room.interactive else None
        room.prompting = room.interactive
        threading.Thread(target=_read_stdin, args=(loop, lines, prompt), daemon=True).start()
        tasks = {
            asyncio.create_task(room.incoming()): "incoming",
            asyncio.create_task(room.outgoing(lines)): "outgoing",
            asyncio.create_task(stop.wait()): "stop",
        }
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if room.interactive:
            sys.stdout.write("\r\x1b[2K")
        finished = next(iter(done))
        if tasks[finished] == "incoming":
            error = finished.exception()
            why = _closed_reason(error) if isinstance(error, ConnectionClosed) else "closed"
            raise CliError(f"chat connection ended: {why}", EXIT_ERROR)
        console.print(f"left room #{room_id}")
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 3)


def _closed_reason(exc: ConnectionClosed) -> str:
    frame = exc.rcvd
    return f"{frame.code} {frame.reason}".strip() if frame else "connection lost"


@app.command()
@handle_errors
def join(
    manga_id: Annotated[int, typer.Argument(help="Manga id: each series has a room.", min=1)],
    server: ServerOpt = None,
) -> None:
    """Join a series' chat room: type to talk; /who, /leave, /quit.

    Example: mangahub chat join 42
    """
    where = endpoints(server)
    # The Api stays open for the session: it is the token source of its renewals.
    with Api(where.server) as api, _terminal_restored():
        asyncio.run(_chat(where.ws_url, api.access_token, manga_id))


@contextlib.contextmanager
def _terminal_restored() -> Iterator[None]:
    """Line editing changes the terminal's modes while it reads; leaving in the middle
    of a read (an incoming close, Ctrl+C) must not leave the shell without echo."""
    try:
        saved = termios.tcgetattr(sys.stdin.fileno())
    except (termios.error, OSError, ValueError):
        yield  # not a terminal
        return
    try:
        yield
    finally:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
