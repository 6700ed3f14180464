"""MangaHub: a self-hostable manga tracker speaking HTTP, TCP, UDP, WebSocket and gRPC."""

__version__ = "0.1.0"
