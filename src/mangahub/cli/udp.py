"""``mangahub udp listen``: live notifications over UDP.

Subscribes with the access token, prints each NOTIFICATION once (the server re-sends
until ACKed, so copies are recognised by id), ACKs every copy, PINGs to keep the
subscription alive (subscribing again if the server forgot it), and on Ctrl+C sends
UNSUBSCRIBE and exits 0.

A subscription lasts as long as its access token: a while before it runs out
(:func:`~mangahub.security.tokens.renew_after` the ``expires_in`` of each SUBSCRIBED)
the listener sends SUBSCRIBE again with a fresh token, which renews it in place. If
the server ends it anyway (``UNAUTHORIZED``, e.g. "access token expired" after a
suspend), it subscribes again with a refreshed token; the server keeps what was not
delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import deque
from typing import Annotated, Any, Final, Protocol, cast

import orjson
import typer

from mangahub.cli.api import Api
from mangahub.cli.common import JsonOpt, ServerOpt, UdpOpt, endpoints
from mangahub.cli.output import (
    EXIT_AUTH,
    EXIT_UNAVAILABLE,
    CliError,
    console,
    escape,
    fmt,
    handle_errors,
    info,
    print_json_line,
)
from mangahub.security.tokens import RENEW_FLOOR, renew_after

app = typer.Typer(help="Real-time notifications over UDP.", no_args_is_help=True)

ATTEMPTS: Final = 5
REPLY_TIMEOUT: Final = 1.0
# After "server shutting down": rounds of ATTEMPTS SUBSCRIBEs (about a minute in all).
RESUBSCRIBE_ATTEMPTS: Final = 12
REMEMBERED_IDS: Final = 1024
INBOX: Final = 1024


class TokenSource(Protocol):
    """Where fresh access tokens come from (:class:`~mangahub.cli.api.Api`)."""

    def access_token(self, *, force: bool = False) -> str: ...


class _Socket(asyncio.DatagramProtocol):
    """Datagrams in, decoded, onto a bounded queue."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(INBOX)
        self.transport: asyncio.DatagramTransport | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(message, dict) and not self.inbox.full():
            self.inbox.put_nowait(message)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected socket: nobody listens there (yet).
        self.refused = isinstance(exc, ConnectionRefusedError)

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None:
            self.transport.sendto(orjson.dumps(message))


class Listener:
    def __init__(
        self,
        api: TokenSource,
        address: tuple[str, int],
        json: bool,
        ping_interval: float,
        count: int,
    ) -> None:
        self.api = api
        self.address = address
        self.json = json
        self.ping_interval = ping_interval
        self.count = count
        self.shown = 0
        self.seen: deque[int] = deque(maxlen=REMEMBERED_IDS)
        self.sock = _Socket()
        self.renew_at: float | None = None
        """When to renew the subscription (loop clock), from the last SUBSCRIBED."""
        self.nonce: str | None = None
        """From the last SUBSCRIBED: PING, ACK and UNSUBSCRIBE echo it, proving they
        come from this socket (a forged one is ignored by the server)."""

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self.sock, remote_addr=self.address
        )
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        try:
            user = await self.subscribe()
            info(
                f"listening for notifications at udp://{self.address[0]}:{self.address[1]} "
                f"(user {user}); Ctrl+C to stop"
            )
            await self.listen(stop)
        finally:
            with contextlib.suppress(Exception):
                await self.unsubscribe()
            transport.close()
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)

    async def request(self, message: dict[str, Any], wanted: str) -> dict[str, Any] | None:
        """Send until a reply of type ``wanted`` (or ERROR) comes; UDP may lose either."""
        for _ in range(ATTEMPTS):
            self.sock.send(message)
            try:
                async with asyncio.timeout(REPLY_TIMEOUT):
                    while True:
                        reply = await self.sock.inbox.get()
                        if reply.get("type") in (wanted, "ERROR"):
                            return reply
                        self.handle(reply)  # a notification may come first
            except TimeoutError:
                continue
        return None

    async def subscribe(self, *, force_refresh: bool = False) -> str:
        token = await asyncio.to_thread(self.api.access_token, force=force_refresh)
        reply = await self.request({"type": "SUBSCRIBE", "token": token}, "SUBSCRIBED")
        if reply is None:
            raise CliError(
                f"no answer from MangaHub's UDP server at {self.address[0]}:{self.address[1]}",
                EXIT_UNAVAILABLE,
            )
        if reply["type"] == "ERROR":
            if reply.get("code") == "UNAUTHORIZED" and not force_refresh:
                return await self.subscribe(force_refresh=True)
            code = str(reply.get("code", "")).lower()
            raise CliError(
                f"subscription refused: {reply.get('message', code)}",
                EXIT_AUTH if code == "unauthorized" else EXIT_UNAVAILABLE,
            )
        nonce = reply.get("nonce")
        self.nonce = nonce if isinstance(nonce, str) else None  # None: an older server
        # Answer at once: the server sends nothing else until this address has.
        self.send("PING")
        expires_in = reply.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            delay = max(RENEW_FLOOR, renew_after(expires_in))
            self.renew_at = asyncio.get_running_loop().time() + delay
        else:
            self.renew_at = None  # a token without expiry (or an older server)
        return str(reply.get("user_id"))

    async def unsubscribe(self) -> None:
        for _ in range(3):
            self.send("UNSUBSCRIBE")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    while (await self.sock.inbox.get()).get("type") != "UNSUBSCRIBED":
                        pass
                    return

    async def listen(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self.ping_interval
        while not stop.is_set() and not (self.count and self.shown >= self.count):
            getter = asyncio.ensure_future(self.sock.inbox.get())
            stopper = asyncio.ensure_future(stop.wait())
            wake = next_ping if self.renew_at is None else min(next_ping, self.renew_at)
            done, _ = await asyncio.wait(
                {getter, stopper},
                timeout=max(0.0, wake - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            stopper.cancel()
            if getter in done:
                message = getter.result()
                if message.get("type") == "PONG" and message.get("subscribed") is False:
                    await self.subscribe()  # the server dropped us (restart, expiry)
                elif message.get("type") == "ERROR" and message.get("code") == "UNAUTHORIZED":
                    await self.subscribe(force_refresh=True)
                elif message.get("type") == "ERROR" and message.get("code") == "UNAVAILABLE":
                    # "server shutting down; SUBSCRIBE again": a replacement (or another
                    # replica) takes over within seconds; do not wait for the next PING.
                    self.handle(message)
                    await self.resubscribe(stop)
                else:
                    self.handle(message)
            else:
                getter.cancel()
            if self.renew_at is not None and loop.time() >= self.renew_at:
                await self.subscribe()  # a fresh token renews the subscription in place
            if loop.time() >= next_ping:
                self.send("PING")
                next_ping = loop.time() + self.ping_interval

    def send(self, kind: str, **fields: Any) -> None:
        message = {"type": kind, **fields}
        if self.nonce is not None:
            message["nonce"] = self.nonce
        self.sock.send(message)

    async def resubscribe(self, stop: asyncio.Event) -> None:
        """SUBSCRIBE again until a server answers (it may be restarting), or stop."""
        for attempt in range(RESUBSCRIBE_ATTEMPTS):
            if stop.is_set():
                return
            try:
                await self.subscribe()
            except CliError:
                if attempt == RESUBSCRIBE_ATTEMPTS - 1:
                    raise
                continue
            info("subscribed again")
            return

    def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "NOTIFICATION":
            nid = message.get("id")
            if isinstance(nid, int):
                # ACK every copy: a copy means our last ACK may have been lost.
                self.send("ACK", id=nid)
                if nid in self.seen:
                    return
                self.seen.append(nid)
            self.shown += 1
            self.show(message)
        elif kind == "ERROR":
            info(f"[yellow]server:[/yellow] {escape(str(message.get('message')))}")

    def show(self, note: dict[str, Any]) -> None:
        if self.json:
            print_json_line(note)
            return
        kind = str(note.get("kind", "")).replace("_", " ")
        when = fmt(note.get("created_at"))
        title = escape(str(note.get("title") or ""))
        line = f"[dim]{when}[/dim] [bold magenta]{kind}[/bold magenta] [bold]{title}[/bold]"
        if note.get("kind") == "new_chapter" and note.get("chapter") is not None:
            line += f" — chapter {fmt(note.get('chapter'))}"
        message = note.get("message")
        if message:
            line += f": {escape(str(message))}"
        console.print(line)


@app.command()
@handle_errors
def listen(
    server: ServerOpt = None,
    udp: UdpOpt = None,
    count: Annotated[
        int, typer.Option("--count", min=0, help="Exit after this many notifications (0: never).")
    ] = 0,
    ping_interval: Annotated[
        float, typer.Option("--ping-interval", min=1, help="Seconds between keep-alive PINGs.")
    ] = 60,
    json: JsonOpt = False,
) -> None:
    """Print notifications as they arrive (Ctrl+C unsubscribes and exits).

    Examples:
      mangahub udp listen
      mangahub udp listen --json | jq .title
    """
    where = endpoints(server, udp=udp)
    with Api(where.server) as api:
        api.credentials()
        asyncio.run(Listener(api, where.udp, json, ping_interval, count).run())
