"""The HTTP door: REST under /api, health, metrics (WebSocket chat joins later)."""
