#!/usr/bin/env python3
"""Container health probe for each MangaHub part; exit 0 healthy, 1 not.

    healthcheck.py http http://127.0.0.1:8084/healthz   # api: 200 from the URL
    healthcheck.py tcp 127.0.0.1:8081                   # tcp: answers a ping
    healthcheck.py udp 127.0.0.1:8082                   # udp: PING gets a PONG
    healthcheck.py grpc 127.0.0.1:8083                  # grpc: health service SERVING
    healthcheck.py alive                                # a part without a listener

Standard library only (plus grpc for the gRPC probe), so it runs in the slim image
without extra packages. Every probe is bounded by ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import urllib.request


def split_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def probe_http(url: str, timeout: float) -> str | None:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed URL
        return None if response.status == 200 else f"HTTP {response.status}"


def probe_tcp(address: str, timeout: float) -> str | None:
    """Any line-protocol session answers ``ping`` with ``pong``, even before auth."""
    with socket.create_connection(split_address(address), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(b'{"type":"ping"}\n')
        reply = sock.makefile("rb").readline()
    kind = json.loads(reply).get("type") if reply else None
    return None if kind in ("pong", "error") else f"unexpected reply {reply!r}"


def probe_udp(address: str, timeout: float) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout / 3)
        for _ in range(3):  # a datagram may be lost
            sock.sendto(b'{"type":"PING"}', split_address(address))
            try:
                data = sock.recv(8192)
            except TimeoutError:
                continue
            return None if json.loads(data).get("type") == "PONG" else f"reply {data!r}"
    return "no PONG"


def probe_grpc(address: str, timeout: float) -> str | None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    serving = health_pb2.HealthCheckResponse.SERVING
    return None if reply.status == serving else f"status {reply.status}"


def probe_alive(_target: str, _timeout: float) -> str | None:
    """The container's main process runs and is not a zombie."""
    with open("/proc/1/stat") as stat:
        state = stat.read().rsplit(")", 1)[1].split()[0]
    return None if state not in ("Z", "X") else f"process state {state}"


PROBES = {
    "http": probe_http,
    "tcp": probe_tcp,
    "udp": probe_udp,
    "grpc": probe_grpc,
    "alive": probe_alive,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(PROBES))
    parser.add_argument("target", nargs="?", default="")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("HC_TIMEOUT", 3)))
    args = parser.parse_args(argv)
    try:
        problem = PROBES[args.kind](args.target, args.timeout)
    except Exception as exc:  # any failure to probe is "unhealthy", with the reason
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
