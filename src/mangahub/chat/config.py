"""Limits and timers of the WebSocket chat; the defaults are SPEC's (tests shorten them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChatConfig:
    auth_timeout: float = 10.0
    """Seconds a connection without a header/query token has to send ``auth``."""
    ping_interval: float = 54.0
    """Silence (nothing received) after which the server sends ``{"type":"ping"}``."""
    idle_timeout: float = 60.0
    """Silence after which the connection is closed (1008)."""
    send_queue: int = 256
    """Messages waiting for one client's socket. A broadcast that finds it full drops
    that client (1008): one slow reader never slows its rooms."""
    close_timeout: float = 5.0
    """How long a close frame (after the queued messages) may take to go out."""
    history_size: int = 50
    chat_rate: float = 5.0
    """Chat messages per second per user (on one process), ``chat_burst`` saved up."""
    chat_burst: int = 10
    message_rate: float = 20.0
    """Any message per second per connection (join spam costs a query each)."""
    message_burst: int = 40
    max_rooms: int = 50
    """Rooms one connection may be in at once."""
    presence_delay: float = 0.1
    """Presence changes within this many seconds go out as one message."""
    presence_refresh: float = 20.0
    """Each process re-announces its members this often; another process's
    announcement is forgotten after three periods (it crashed or lost Redis)."""

    def __post_init__(self) -> None:
        if not 0 < self.ping_interval < self.idle_timeout:
            raise ValueError("need 0 < ping_interval < idle_timeout")
        if self.send_queue < 8:
            raise ValueError("send_queue must hold a few messages")
