#!/usr/bin/env python3
"""Run a MangaHub cluster on one host without Docker: one ``mangahub serve <part>``
process per replica (api x2, tcp x2 and one of every other part by default), sharing
PostgreSQL and Redis.

    python scripts/cluster.py --database-url postgresql+asyncpg://mangahub@db/mangahub \\
        --redis-url redis://127.0.0.1:6379/0 [--scale api=3] [--base-port 9100]

Migrations (and the bundled catalog, the admin user and the shared secrets in the data
dir) are done once, by ``mangahub db migrate`` and ``mangahub db seed``, before any
server starts. Each process gets its own ports: replica ``n`` of the cluster listens
on ``base_port + 10*n + offset`` (0 http, 1 tcp, 2 udp, 3 grpc, 5 trigger); with
``--base-port 0`` every port is ephemeral. The endpoints are printed as

    cluster api#1 http 127.0.0.1:9100

followed by ``cluster ready``. Ctrl+C or SIGTERM stops every process (each drains
first); if one process dies, the others are stopped too and the exit status is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LISTEN_LINE = re.compile(r"^mangahub (\w+) listening on (\S+):(\d+)$")
# A part without a socket (sync) says it runs instead.
RUNNING_LINE = re.compile(r"^mangahub (\w+) running$")
# Which listeners a part announces before it is ready; an unknown part is ready at
# its first announced listener.
LISTENERS = {"api": {"http"}, "tcp": {"tcp"}, "udp": {"udp", "trigger"}, "grpc": {"grpc"}}
PORT_OFFSETS = {"http": 0, "tcp": 1, "udp": 2, "grpc": 3, "trigger": 5}
DEFAULT_SCALE = {"api": 2, "tcp": 2}


def available_parts() -> tuple[str, ...]:
    """The parts this build can serve, asked of the installed package itself."""
    from mangahub.servers import PARTS

    return tuple(PARTS)


@dataclass
class Member:
    """One server process of the cluster."""

    part: str
    index: int
    slot: int
    process: asyncio.subprocess.Process | None = None
    listeners: dict[str, str] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False

    @property
    def name(self) -> str:
        return f"{self.part}#{self.index}"

    def is_ready(self) -> bool:
        wanted = LISTENERS.get(self.part)
        return bool(self.listeners) and (wanted is None or wanted <= set(self.listeners))


def parse_scale(values: list[str], parts: tuple[str, ...]) -> dict[str, int]:
    scale = {part: DEFAULT_SCALE.get(part, 1) for part in parts}
    for value in values:
        part, _, count = value.partition("=")
        if part not in parts or not count.isdigit():
            raise SystemExit(f"--scale {value!r}: expected PART=N with PART in {', '.join(parts)}")
        scale[part] = int(count)
    return scale


def base_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MANGAHUB_DATABASE_URL=args.database_url,
        MANGAHUB_REDIS_URL=args.redis_url,
        MANGAHUB_REDIS_NAMESPACE=args.redis_namespace,
        MANGAHUB_DATA_DIR=str(args.data_dir),
        MANGAHUB_HOST=args.host,
    )
    if args.config is not None:
        env["MANGAHUB_CONFIG"] = str(args.config)
    return env


def member_env(env: dict[str, str], member: Member, base_port: int) -> dict[str, str]:
    ports = {
        f"MANGAHUB_{name.upper()}_PORT": str(
            base_port + 10 * member.slot + offset if base_port else 0
        )
        for name, offset in PORT_OFFSETS.items()
    }
    # The catalog was loaded once before start-up; replicas must not race to load it.
    return {**env, **ports, "MANGAHUB_SEED_CATALOG": "false"}


async def run_once(env: dict[str, str], *command: str) -> None:
    """A ``mangahub`` maintenance command; its output passes through."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mangahub", *command, env=env, stdin=asyncio.subprocess.DEVNULL
    )
    if await process.wait() != 0:
        raise SystemExit(f"cluster: 'mangahub {' '.join(command)}' failed")


async def pump(member: Member) -> None:
    """Relay a member's output with its name, and notice its listeners."""
    assert member.process is not None and member.process.stdout is not None
    async for raw in member.process.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        print(f"[{member.name}] {line}", flush=True)
        match = LISTEN_LINE.match(line)
        if match:
            member.listeners[match[1]] = f"{match[2]}:{match[3]}"
            if member.is_ready():
                member.ready.set()
        elif RUNNING_LINE.match(line) and member.part not in LISTENERS:
            member.ready.set()


async def start(member: Member, env: dict[str, str]) -> asyncio.Task[None]:
    member.process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mangahub",
        "serve",
        member.part,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    return asyncio.create_task(pump(member), name=f"pump-{member.name}")


async def stop_all(members: list[Member], timeout: float) -> None:
    """SIGTERM everyone (each drains its clients), SIGKILL whoever outlives ``timeout``."""
    running = [m for m in members if m.process is not None and m.process.returncode is None]
    for member in running:
        member.stopping = True
        assert member.process is not None
        with contextlib.suppress(ProcessLookupError):
            member.process.send_signal(signal.SIGTERM)

    async def reap(member: Member) -> None:
        assert member.process is not None
        try:
            await asyncio.wait_for(member.process.wait(), timeout)
        except TimeoutError:
            print(f"cluster: {member.name} did not stop in {timeout:.0f} s; killing", flush=True)
            with contextlib.suppress(ProcessLookupError):
                member.process.kill()
            await member.process.wait()

    await asyncio.gather(*(reap(m) for m in running))


async def main(args: argparse.Namespace) -> int:
    parts = available_parts()
    scale = parse_scale(args.scale, parts)
    env = base_env(args)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    print("cluster: migrating the database once", flush=True)
    await run_once(env, "db", "migrate")
    if not args.no_seed:
        await run_once(env, "db", "seed")

    members: list[Member] = []
    for part in parts:
        for index in range(1, scale[part] + 1):
            members.append(Member(part, index, slot=len(members)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    pumps: list[asyncio.Task[None]] = []
    status = 0
    try:
        for member in members:
            pumps.append(await start(member, member_env(env, member, args.base_port)))

        async def died(member: Member) -> Member:
            assert member.process is not None
            await member.process.wait()
            return member

        async def all_ready() -> None:
            await asyncio.gather(*(m.ready.wait() for m in members))

        watchers: list[asyncio.Task[Any]] = [asyncio.create_task(died(m)) for m in members]
        readiness: asyncio.Task[Any] = asyncio.create_task(all_ready())
        stopped: asyncio.Task[Any] = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait(
            [readiness, stopped, *watchers],
            timeout=args.startup_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if readiness in done:
            for member in members:
                for name, address in sorted(member.listeners.items()):
                    print(f"cluster {member.name} {name} {address}", flush=True)
                if not member.listeners:
                    print(f"cluster {member.name} running", flush=True)
            print(f"cluster ready ({len(members)} processes)", flush=True)
            done, _ = await asyncio.wait([stopped, *watchers], return_when=asyncio.FIRST_COMPLETED)
        elif not done:
            print(f"cluster: not ready after {args.startup_timeout:.0f} s", flush=True)
            status = 1
        for task in done:
            if task in watchers:
                dead: Member = task.result()
                assert dead.process is not None
                print(
                    f"cluster: {dead.name} exited with {dead.process.returncode}; stopping all",
                    flush=True,
                )
                status = 1
        for task in [readiness, stopped, *watchers]:
            task.cancel()
    finally:
        print("cluster: stopping", flush=True)
        await stop_all(members, args.drain_timeout)
        await asyncio.gather(*pumps, return_exceptions=True)
    print("cluster: stopped", flush=True)
    return status


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run MangaHub's parts as separate processes on one host."
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MANGAHUB_DATABASE_URL"),
        required="MANGAHUB_DATABASE_URL" not in os.environ,
        help="PostgreSQL URL, e.g. postgresql+asyncpg://user@host/db",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("MANGAHUB_REDIS_URL"),
        required="MANGAHUB_REDIS_URL" not in os.environ,
        help="Redis URL for cross-process events, e.g. redis://127.0.0.1:6379/0",
    )
    parser.add_argument(
        "--redis-namespace", default=os.environ.get("MANGAHUB_REDIS_NAMESPACE", "mangahub")
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("MANGAHUB_DATA_DIR", "data")),
        help="Shared secrets (JWT key, internal token) live here unless set in the environment.",
    )
    parser.add_argument("--host", default=os.environ.get("MANGAHUB_HOST", "127.0.0.1"))
    parser.add_argument(
        "--base-port", type=int, default=9100, help="First port; 0 for ephemeral ports."
    )
    parser.add_argument(
        "--scale",
        action="append",
        default=[],
        metavar="PART=N",
        help="Replicas of a part (default api=2, tcp=2, every other part 1).",
    )
    parser.add_argument("--config", type=Path, default=None, help="TOML file for every process.")
    parser.add_argument("--no-seed", action="store_true", help="Do not load the bundled catalog.")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--drain-timeout", type=float, default=20.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
