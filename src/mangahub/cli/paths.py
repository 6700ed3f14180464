"""Where the client keeps its files and which servers it talks to.

Directories: ``MANGAHUB_HOME`` holds everything when set (handy for tests and for
several profiles). Otherwise the config (``client.toml``, the fallback credentials
file) lives in ``$XDG_CONFIG_HOME/mangahub`` and the sync daemon's files (pid, state,
log, queue) in ``~/.mangahub``.

Addresses, first found wins: the command's flag, ``MANGAHUB_SERVER`` /
``MANGAHUB_TCP`` / ``MANGAHUB_UDP`` / ``MANGAHUB_GRPC``, ``server`` / ``tcp`` / ``udp`` /
``grpc`` in ``client.toml``, then the server's own keys (``host``, ``http_port``,
``tcp_port``, ``udp_port``, ``grpc_port``) from ``client.toml``, and finally the
server URL's host (127.0.0.1 by default) with SPEC's default ports.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mangahub.cli.output import EXIT_BAD_INPUT, CliError

DEFAULT_PORTS = {"http": 8084, "tcp": 8081, "udp": 8082, "grpc": 8083}


def config_dir() -> Path:
    home = os.environ.get("MANGAHUB_HOME")
    if home:
        return Path(home)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "mangahub"


def state_dir() -> Path:
    home = os.environ.get("MANGAHUB_HOME")
    return Path(home) if home else Path.home() / ".mangahub"


def private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) when missing; credentials and queues live there."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _client_toml() -> dict[str, Any]:
    path = config_dir() / "client.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}", EXIT_BAD_INPUT) from exc


@dataclass(frozen=True)
class Endpoints:
    """The addresses of one MangaHub deployment, as this client reaches it."""

    server: str
    """HTTP base URL, e.g. ``http://127.0.0.1:8084`` (no trailing slash)."""
    tcp: tuple[str, int]
    udp: tuple[str, int]
    grpc: tuple[str, int]

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.server.startswith("https:") else "ws"
        return f"{scheme}://{self.server.split('://', 1)[1]}/ws"


def normalize_server(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    if scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise CliError(f"invalid server URL {url!r} (expected http://host:port)", EXIT_BAD_INPUT)
    # One spelling per server (logins are stored by it): scheme and host are case-
    # insensitive, a trailing slash means nothing.
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def parse_hostport(value: str, default_host: str, what: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    if not sep:
        host, port = value, ""
    try:
        number = int(port)
    except ValueError:
        raise CliError(f"invalid {what} address {value!r} (expected host:port)", 2) from None
    if not 0 < number < 65536:
        raise CliError(f"invalid {what} port in {value!r}", EXIT_BAD_INPUT)
    return (host.strip("[]") or default_host), number


def resolve(
    server: str | None = None,
    tcp: str | None = None,
    udp: str | None = None,
    grpc: str | None = None,
) -> Endpoints:
    toml = _client_toml()
    host = str(toml.get("host") or "127.0.0.1")
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"  # a bind-all address from a server config: connect locally
    url = server or os.environ.get("MANGAHUB_SERVER") or toml.get("server")
    if not url:
        url = f"http://{host}:{int(toml.get('http_port', DEFAULT_PORTS['http']))}"
    url = normalize_server(str(url))
    server_host = urlsplit(url).hostname or host

    def door(flag: str | None, name: str) -> tuple[str, int]:
        value = flag or os.environ.get(f"MANGAHUB_{name.upper()}") or toml.get(name)
        if value:
            return parse_hostport(str(value), server_host, name.upper())
        return server_host, int(toml.get(f"{name}_port", DEFAULT_PORTS[name]))

    return Endpoints(url, door(tcp, "tcp"), door(udp, "udp"), door(grpc, "grpc"))
