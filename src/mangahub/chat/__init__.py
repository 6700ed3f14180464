"""WebSocket chat: rooms per series, fan-out across processes over the event bus.

``protocol`` parses and builds messages (no I/O), ``client`` is one connection's
bounded send queue and writer task, ``presence`` tracks who is in a room across
processes, and ``hub`` ties them to the bus and ``ChatService``. The ASGI endpoint
is ``mangahub.http.routes.ws``.
"""

from mangahub.chat.config import ChatConfig
from mangahub.chat.hub import Hub

__all__ = ["ChatConfig", "Hub"]
