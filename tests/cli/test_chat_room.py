"""``Room.join`` against a scripted WebSocket peer on a real local socket: the join is
done only once the room's presence arrived, however late after the history."""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from mangahub.cli.chat import Room


async def test_join_waits_for_presence_after_history() -> None:
    async def room_server(ws: ServerConnection) -> None:
        join = orjson.loads(await ws.recv())
        room = join["room_id"]
        await ws.send(orjson.dumps({"type": "history", "room_id": room, "messages": []}).decode())
        await asyncio.sleep(0.3)  # a busy server: presence comes later
        presence = {"type": "presence", "room_id": room, "users": ["alice", "bob"]}
        await ws.send(orjson.dumps(presence).decode())
        await ws.wait_closed()

    async with serve(room_server, "127.0.0.1", 0) as server:
        host, port = next(iter(server.sockets)).getsockname()[:2]
        async with connect(f"ws://{host}:{port}") as ws:
            room = Room(ws, 5, interactive=False)
            await room.join()
            assert room.users == ["alice", "bob"]  # what /who prints
