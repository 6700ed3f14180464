"""Fixtures for the UDP door: the ``udp`` part (UDP server + trigger) on 127.0.0.1:0
over the session runtime, a datagram-level test client, private series to follow."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, cast

import httpx
import orjson
import pytest
from sqlalchemy import select

from mangahub.app import Runtime
from mangahub.domain.enums import MangaStatus
from mangahub.servers import RunningServers, run_servers
from mangahub.storage.models import Manga, Notification
from mangahub.udp.server import UdpConfig, UdpServer
from tests.conftest import UserSession

Address = tuple[str, int]


class UdpClient(asyncio.DatagramProtocol):
    """A test subscriber on its own socket, connected to one server address.

    ``lossy``: the first copy of every distinct datagram is thrown away (as if the
    network lost it); a second, identical copy gets through.
    """

    def __init__(self, lossy: bool = False) -> None:
        self.lossy = lossy
        self.dropped = 0
        self.copies: dict[int, int] = {}  # notification id → copies received
        self._seen_raw: set[bytes] = set()
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # NOTIFICATIONs that arrived while a request waited for its reply, kept for
        # the next reads: a renewal does not send them again, so skipping them
        # would lose them for this subscription (a real client handles them too).
        self._held: deque[dict[str, Any]] = deque()
        self._transport: asyncio.DatagramTransport | None = None
        # From the last SUBSCRIBED; echoed by PING, ACK and UNSUBSCRIBE.
        self.nonce: str | None = None

    @classmethod
    async def open(cls, address: Address, *, lossy: bool = False) -> UdpClient:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_datagram_endpoint(
            lambda: cls(lossy), remote_addr=address, local_addr=("127.0.0.1", 0)
        )
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if self.lossy and data not in self._seen_raw:
            self._seen_raw.add(data)
            self.dropped += 1
            return
        message = orjson.loads(data)
        assert isinstance(message, dict)
        assert len(data) <= 8192
        if message.get("type") == "NOTIFICATION":
            self.copies[message["id"]] = self.copies.get(message["id"], 0) + 1
        self._inbox.put_nowait(message)

    def error_received(self, exc: Exception) -> None:
        pass

    @property
    def address(self) -> Address:
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def send(self, message: dict[str, Any] | bytes) -> None:
        """Dicts of the nonce-echoing types carry the nonce (``"nonce": None``: not)."""
        assert self._transport is not None
        if isinstance(message, dict) and message.get("type") in ("PING", "ACK", "UNSUBSCRIBE"):
            message = {"nonce": self.nonce, **message}
            if message["nonce"] is None:
                del message["nonce"]
        self._transport.sendto(message if isinstance(message, bytes) else orjson.dumps(message))

    async def _next(self) -> dict[str, Any]:
        return self._held.popleft() if self._held else await self._inbox.get()

    async def recv(self, timeout: float = 3.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            return await self._next()

    async def recv_type(
        self, kind: str, timeout: float = 3.0, *, hold: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The next message of ``kind``, skipping others (re-sent copies, PONGs);
        skipped NOTIFICATIONs go to ``hold`` when given."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self._next()
                if message["type"] == kind:
                    return message
                if hold is not None and message["type"] == "NOTIFICATION":
                    hold.append(message)

    def drain(self) -> None:
        """Forget what arrived so far."""
        self._held.clear()
        while not self._inbox.empty():
            self._inbox.get_nowait()

    async def expect_silence(self, wait: float = 0.3) -> None:
        try:
            message = await self.recv(wait)
        except TimeoutError:
            return
        raise AssertionError(f"expected nothing, got {message}")

    async def request(self, message: dict[str, Any] | bytes, kind: str) -> dict[str, Any]:
        """Send until a reply of ``kind`` comes (UDP: the request or reply may be lost).
        NOTIFICATIONs arriving meanwhile stay to be read next."""
        held: list[dict[str, Any]] = []
        try:
            for _ in range(10):
                self.send(message)
                try:
                    return await self.recv_type(kind, timeout=0.3, hold=held)
                except TimeoutError:
                    continue
            raise AssertionError(f"no {kind} reply")
        finally:
            self._held.extendleft(reversed(held))

    async def subscribe(self, token: str) -> dict[str, Any]:
        """SUBSCRIBE, then answer from this address (a PING echoing the nonce), which
        starts the notifications."""
        reply = await self.request({"type": "SUBSCRIBE", "token": token}, "SUBSCRIBED")
        self.nonce = reply.get("nonce")
        await self.request({"type": "PING"}, "PONG")
        return reply

    async def notifications(
        self, count: int, *, ack: bool = True, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """``count`` distinct notifications as the application sees them: duplicates
        dropped by id, every copy ACKed (a copy means the last ACK may be lost)."""
        seen: dict[int, dict[str, Any]] = {}
        async with asyncio.timeout(timeout):
            while len(seen) < count:
                message = await self.recv_type("NOTIFICATION", timeout=timeout)
                if ack:
                    self.send({"type": "ACK", "id": message["id"]})
                seen.setdefault(message["id"], message)
        return list(seen.values())

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


OpenClient = Callable[..., Awaitable[UdpClient]]


@pytest.fixture(scope="session")
async def udp_part(runtime: Runtime) -> AsyncIterator[RunningServers]:
    """``mangahub serve udp`` in-process: the UDP server and the trigger, on ephemeral
    ports (the same runtime, only its settings say port 0)."""
    settings = runtime.settings.model_copy(update={"udp_port": 0, "trigger_port": 0})
    async with run_servers(
        replace(runtime, settings=settings), ["udp"], drain_timeout=5
    ) as running:
        yield running


@pytest.fixture
async def open_client(udp_part: RunningServers) -> AsyncIterator[OpenClient]:
    """Open test clients (to the shared server unless given an address); all are
    closed at the end of the test."""
    opened: list[UdpClient] = []

    async def open_one(address: Address | None = None, *, lossy: bool = False) -> UdpClient:
        client = await UdpClient.open(address or udp_part.address("udp"), lossy=lossy)
        opened.append(client)
        return client

    yield open_one
    for client in opened:
        client.close()


@pytest.fixture
async def trigger(udp_part: RunningServers, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the trigger port carrying the internal token."""
    host, port = udp_part.address("trigger")
    assert runtime.settings.internal_token is not None
    token = runtime.settings.internal_token.get_secret_value()
    async with httpx.AsyncClient(
        base_url=f"http://{host}:{port}", headers={"X-Internal-Token": token}, timeout=10
    ) as client:
        yield client


@contextlib.asynccontextmanager
async def dedicated_server(runtime: Runtime, config: UdpConfig) -> AsyncIterator[UdpServer]:
    """A UDP server of its own (short timers), on the shared runtime and bus."""
    server = UdpServer(runtime, "127.0.0.1", 0, config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(5)


async def new_series(runtime: Runtime) -> tuple[int, str]:
    """A private series (nobody follows it yet): ``(id, title)``."""
    tag = uuid.uuid4().hex[:12]
    manga = Manga(
        slug=f"udp-test-{tag}",
        title=f"UDP Test {tag}",
        status=MangaStatus.ONGOING.value,
        search_text=f"UDP Test {tag}",
    )
    async with runtime.db.session() as s:
        s.add(manga)
    return manga.id, manga.title


async def follow(client: httpx.AsyncClient, user: UserSession, manga_id: int) -> None:
    r = await client.post("/api/library", json={"manga_id": manga_id}, headers=user.headers)
    assert r.status_code == 201, r.text


async def new_chapter(
    trigger: httpx.AsyncClient,
    manga_id: int,
    title: str,
    chapter: float,
    old_chapter: float | None = None,
) -> int:
    body: dict[str, Any] = {"manga_id": manga_id, "title": title, "chapter": chapter}
    if old_chapter is not None:
        body["old_chapter"] = old_chapter
    r = await trigger.post("/notify/new-chapter", json=body)
    assert r.status_code == 202, r.text
    reply = r.json()
    assert reply["accepted"] is True
    recipients: int = reply["recipients"]
    return recipients


async def delivered(runtime: Runtime, *ids: int) -> dict[int, bool]:
    async with runtime.db.session() as s:
        rows = (
            await s.execute(
                select(Notification.id, Notification.delivered).where(Notification.id.in_(ids))
            )
        ).all()
    return {row[0]: row[1] for row in rows}


async def wait_delivered(runtime: Runtime, *ids: int, timeout: float = 5.0) -> None:
    """ACKs are written in batches by a background task: poll until they are."""
    async with asyncio.timeout(timeout):
        while True:
            state = await delivered(runtime, *ids)
            if all(state.get(i) for i in ids):
                return
            await asyncio.sleep(0.02)
