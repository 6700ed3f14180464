"""Options every client command shares."""

from __future__ import annotations

from typing import Annotated

import typer

from mangahub.cli.api import Api
from mangahub.cli.paths import Endpoints, resolve

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        "-s",
        help="MangaHub HTTP URL (default: $MANGAHUB_SERVER, client.toml, http://127.0.0.1:8084).",
        show_default=False,
    ),
]
TcpOpt = Annotated[
    str | None,
    typer.Option("--tcp", help="TCP sync address host:port (default: server host, port 8081)."),
]
UdpOpt = Annotated[
    str | None,
    typer.Option("--udp", help="UDP notification address host:port (default: server host, 8082)."),
]
GrpcOpt = Annotated[
    str | None,
    typer.Option("--grpc", help="gRPC address host:port (default: server host, port 8083)."),
]
# metavar="": an on/off flag, shown without a "<bool>" value in the help.
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", metavar="", help="Print machine-readable JSON on stdout instead of tables."
    ),
]


def api(server: str | None) -> Api:
    return Api(resolve(server).server)


def endpoints(
    server: str | None, tcp: str | None = None, udp: str | None = None, grpc: str | None = None
) -> Endpoints:
    return resolve(server, tcp, udp, grpc)
