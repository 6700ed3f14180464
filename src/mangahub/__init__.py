"""MangaHub: a self-hostable manga tracker speaking HTTP, TCP, UDP, WebSocket and gRPC."""

from mangahub import _native

__version__ = "0.1.0"

# Before any other module of the package is imported: the compiled builds, if any.
_native.install()
