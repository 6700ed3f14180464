"""Responses for bodies that are already JSON bytes (read models, orjson)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Send


class JSONBytes(Response):
    """A body rendered before the response exists: sent as is, never re-encoded."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else orjson.dumps(content)


async def send_json_bytes(send: Send, body: bytes) -> None:
    """A 200 with ready JSON bytes, straight through ASGI ``send``: what the lean paths
    that answer before routing send (the same headers :class:`JSONBytes` gives)."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
