"""Clients for fault tests that keep writing and remember what the server acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.tcp.conftest import Line

Address = tuple[str, int]


@dataclass
class WriteLog:
    """What a writer saw: acknowledged writes (manga id → chapter), refusals by error
    code, transport failures, and the slowest reply."""

    acked: dict[int, float] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    broken: int = 0
    slowest: float = 0.0
    last_ack_at: float = 0.0

    def refuse(self, code: str) -> None:
        self.refused[code] = self.refused.get(code, 0) + 1

    def ack(self, manga_id: int, chapter: float) -> None:
        self.acked[manga_id] = chapter
        self.last_ack_at = time.monotonic()


class TcpWriter:
    """One TCP session writing progress one update at a time (each to its own series),
    reconnecting when the connection breaks."""

    def __init__(self, address: Address, token: str, manga_ids: list[int], reply_timeout: float):
        self.address = address
        self.token = token
        self.todo = list(manga_ids)
        self.reply_timeout = reply_timeout
        self.log = WriteLog()
        self.line: Line | None = None

    async def _connect(self) -> Line:
        line = await Line.open(self.address)
        await line.send({"type": "auth", "token": self.token, "device": "fault-test"})
        reply = await line.recv(self.reply_timeout)
        if reply["type"] != "auth_ok":
            await line.close()
            raise ConnectionError(f"auth refused: {reply}")
        return line

    async def write_one(self) -> bool:
        """Send the next update and wait for its ack or error; False when none is left."""
        if not self.todo:
            return False
        manga_id = self.todo[0]
        chapter = float(manga_id % 97 + 1)
        try:
            if self.line is None:
                self.line = await self._connect()
            started = time.monotonic()
            await self.line.update(f"m{manga_id}", manga_id, chapter)
            while True:
                # A hang here fails the test: replies must come within reply_timeout.
                reply = await self.line.recv(self.reply_timeout)
                if reply.get("id") == f"m{manga_id}":
                    break
            self.log.slowest = max(self.log.slowest, time.monotonic() - started)
        except (OSError, EOFError, ConnectionError):
            self.log.broken += 1
            await self.drop()
            await asyncio.sleep(0.1)
            return True
        if reply["type"] == "ack":
            assert reply["progress"]["manga_id"] == manga_id
            self.log.ack(manga_id, chapter)
            self.todo.pop(0)
        else:
            assert reply["type"] == "error", reply
            self.log.refuse(str(reply["code"]))
            await asyncio.sleep(0.05)
        return True

    async def drop(self) -> None:
        if self.line is not None:
            with contextlib.suppress(Exception):
                await self.line.close()
            self.line = None


class HttpWriter:
    """PUT /api/users/progress one at a time, each to its own series."""

    def __init__(self, base_url: str, token: str, manga_ids: list[int], reply_timeout: float):
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=reply_timeout,
        )
        self.todo = list(manga_ids)
        self.log = WriteLog()
        self.statuses: dict[int, int] = {}

    async def write_one(self) -> bool:
        if not self.todo:
            return False
        manga_id = self.todo[0]
        chapter = float(manga_id % 89 + 1)
        started = time.monotonic()
        try:
            r = await self.client.put(
                "/api/users/progress", json={"manga_id": manga_id, "chapter": chapter}
            )
        except httpx.TimeoutException:
            raise AssertionError("an HTTP write hung instead of failing fast") from None
        except httpx.TransportError:
            self.log.broken += 1
            await asyncio.sleep(0.1)
            return True
        self.log.slowest = max(self.log.slowest, time.monotonic() - started)
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        if r.is_success:
            self.log.ack(manga_id, chapter)
            self.todo.pop(0)
        else:
            body: dict[str, Any] = r.json()
            self.log.refuse(str(body["error"]["code"]))
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        await self.client.aclose()
