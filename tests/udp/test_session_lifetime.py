"""A UDP subscription lasts as long as its access token, and a SUBSCRIBE with a fresh
token renews it in place. Real sockets against servers on 127.0.0.1:0, with tokens
issued a few seconds short of expiry."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import jwt

from mangahub.app import Runtime
from mangahub.cli.udp import Listener
from mangahub.udp.protocol import RetryPolicy
from mangahub.udp.server import UdpConfig, UdpServer
from tests.conftest import MakeUser, UserSession
from tests.tokens import seconds_left, short_token
from tests.udp.conftest import (
    OpenClient,
    UdpClient,
    dedicated_server,
    delivered,
    follow,
    new_chapter,
    new_series,
    wait_delivered,
)

EXPIRED = {"type": "ERROR", "code": "UNAUTHORIZED", "message": "access token expired"}


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_subscribed_carries_the_seconds_left_on_the_token(
    runtime: Runtime, make_user: MakeUser, open_client: OpenClient
) -> None:
    reader = await make_user()
    udp = await open_client()
    full = await udp.subscribe(reader.access_token)
    ttl = runtime.tokens.ttl_seconds
    assert isinstance(full["expires_in"], int)
    assert ttl - 5 <= full["expires_in"] <= ttl

    short = short_token(runtime, reader, 60)
    left = seconds_left(short)
    renewed = await udp.subscribe(short)  # same user, same address: a renewal
    assert renewed["user_id"] == reader.id
    assert left - 2 <= renewed["expires_in"] <= left


async def test_expired_subscription_is_told_and_dropped_and_loses_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    make_user: MakeUser,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    udp = await open_client()
    token = short_token(runtime, reader, 3)
    await udp.subscribe(token)

    assert await udp.recv_type("ERROR", timeout=seconds_left(token) + 2) == EXPIRED
    assert seconds_left(token) <= 0.05  # not before the token ran out
    assert await udp.request({"type": "PING"}, "PONG") == {"type": "PONG", "subscribed": False}
    await new_chapter(trigger, manga_id, title, 1)
    await udp.expect_silence(0.3)  # nothing is pushed to a dropped subscription
    reply = await udp.request({"type": "ACK", "id": 1}, "ERROR")
    assert reply["code"] == "UNAUTHORIZED"

    # Stored and undelivered: a new SUBSCRIBE with a fresh token brings it.
    await udp.subscribe(reader.access_token)
    [message] = await udp.notifications(1)
    assert message["chapter"] == 1
    await wait_delivered(runtime, message["id"])


async def test_renewed_subscription_outlives_the_first_token(
    client: httpx.AsyncClient,
    runtime: Runtime,
    make_user: MakeUser,
    trigger: httpx.AsyncClient,
) -> None:
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    await new_chapter(trigger, manga_id, title, 1)  # waiting in the backlog
    # One send per notification, no re-sends: a second copy could only come from the
    # backlog being read again.
    once = RetryPolicy(initial=0.05, max_interval=0.05, max_attempts=1)
    async with dedicated_server(runtime, UdpConfig(retry=once)) as server:
        udp = await UdpClient.open(server.address)
        try:
            first = short_token(runtime, reader, 3)
            subscribed = await udp.subscribe(first)
            [backlog] = await udp.notifications(1, ack=False)  # left unACKed on purpose
            assert backlog["chapter"] == 1

            second = short_token(runtime, reader, 4)
            assert seconds_left(second) > seconds_left(first)
            renewed = await udp.subscribe(second)
            assert renewed["user_id"] == reader.id
            assert renewed["expires_in"] > subscribed["expires_in"]
            # Past the first token's expiry: no ERROR, no backlog sent again.
            await udp.expect_silence(seconds_left(first) + 0.5)
            assert server.hub.stats.tokens_expired == 0
            assert await udp.request({"type": "PING"}, "PONG") == {
                "type": "PONG",
                "subscribed": True,
            }
            await new_chapter(trigger, manga_id, title, 2)
            [pushed] = await udp.notifications(1)
            assert pushed["chapter"] == 2
            await wait_delivered(runtime, pushed["id"])
            assert await delivered(runtime, backlog["id"]) == {backlog["id"]: False}

            # The renewed token runs out in turn.
            assert await udp.recv_type("ERROR", timeout=seconds_left(second) + 2) == EXPIRED
            assert server.hub.stats.tokens_expired == 1
            assert len(server.hub) == 0
        finally:
            udp.close()


async def test_bad_renewals_leave_the_subscription_as_it_was(
    client: httpx.AsyncClient,
    runtime: Runtime,
    make_user: MakeUser,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    udp = await open_client()
    token = short_token(runtime, reader, 4)
    await udp.subscribe(token)

    stale = short_token(runtime, reader, -3600)
    forged = jwt.encode(
        {"sub": reader.id, "iss": "mangahub", "iat": 0, "exp": 2**40},
        "another-secret-that-is-long-enough-32+",
        algorithm="HS256",
    )
    for bad, why in ((stale, "access token expired"), ("not-a-jwt", "invalid"), (forged, "")):
        reply = await udp.request({"type": "SUBSCRIBE", "token": bad}, "ERROR")
        assert reply["code"] == "UNAUTHORIZED" and why in reply["message"], reply
    # Unchanged: still subscribed, still served, and the token's expiry did not move.
    assert await udp.request({"type": "PING"}, "PONG") == {"type": "PONG", "subscribed": True}
    await new_chapter(trigger, manga_id, title, 1)
    [message] = await udp.notifications(1)
    await wait_delivered(runtime, message["id"])
    assert await udp.recv_type("ERROR", timeout=seconds_left(token) + 2) == EXPIRED


async def test_another_users_token_from_the_address_takes_it_over(
    client: httpx.AsyncClient,
    runtime: Runtime,
    make_user: MakeUser,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    """Decided for UDP (no connection, so an address is not a session): a valid token
    of another user from a subscribed address means the address changed hands. The
    old user's subscription there ends, so none of its notifications reach the new
    holder; they stay stored for the old user's next SUBSCRIBE."""
    alice, bob = await make_user(), await make_user()
    manga_id, title = await new_series(runtime)
    for user in (alice, bob):
        await follow(client, user, manga_id)
    udp = await open_client()
    await udp.subscribe(alice.access_token)
    taken = await udp.subscribe(bob.access_token)
    assert taken["user_id"] == bob.id

    await new_chapter(trigger, manga_id, title, 1)
    [bobs] = await udp.notifications(1)
    await wait_delivered(runtime, bobs["id"])
    await udp.expect_silence(0.3)  # alice's copy is not sent here

    elsewhere = await open_client()
    await elsewhere.subscribe(alice.access_token)
    [alices] = await elsewhere.notifications(1)
    assert alices["chapter"] == 1 and alices["id"] != bobs["id"]
    await wait_delivered(runtime, alices["id"])


class ShortTokens:
    """The CLI's token source (``Api.access_token``) for a user, handing out tokens of
    ``seconds`` to live. ``stale``: keep returning the latest token unless forced (as
    a source that failed to refresh would); a forced one lives a minute."""

    def __init__(
        self, runtime: Runtime, user: UserSession, seconds: float, *, stale: bool = False
    ) -> None:
        self.runtime = runtime
        self.user = user
        self.seconds = seconds
        self.stale = stale
        self.issued: list[str] = []
        self.forced = 0

    def access_token(self, *, force: bool = False) -> str:
        if force:
            self.forced += 1
            self.issued.append(short_token(self.runtime, self.user, 60))
        elif not (self.issued and self.stale):
            self.issued.append(short_token(self.runtime, self.user, self.seconds))
        return self.issued[-1]


async def listen_in_background(
    server: UdpServer, tokens: ShortTokens
) -> tuple[Listener, asyncio.Task[None]]:
    listener = Listener(tokens, server.address, json=True, ping_interval=60, count=1)
    task = asyncio.create_task(listener.run())
    user_id = uuid.UUID(tokens.user.id)
    await wait_for(lambda: server.hub.subscriber(user_id) is not None or task.done())
    return listener, task


async def test_cli_listener_renews_on_its_own(
    client: httpx.AsyncClient, runtime: Runtime, make_user: MakeUser, trigger: httpx.AsyncClient
) -> None:
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    tokens = ShortTokens(runtime, reader, 4)
    async with dedicated_server(runtime, UdpConfig()) as server:
        listener, task = await listen_in_background(server, tokens)
        try:
            sub = server.hub.subscriber(uuid.UUID(reader.id))
            assert sub is not None
            address = sub.address
            first = tokens.issued[0]
            # Renewed twice, and past the first token's expiry.
            await wait_for(lambda: len(tokens.issued) >= 3 or task.done(), timeout=10)
            await asyncio.sleep(max(0.0, seconds_left(first) + 0.2))
            assert not task.done()
            assert tokens.forced == 0
            assert server.hub.stats.tokens_expired == 0
            sub = server.hub.subscriber(uuid.UUID(reader.id))
            assert sub is not None and sub.address == address  # the same subscription

            await new_chapter(trigger, manga_id, title, 7)
            async with asyncio.timeout(5):
                await task  # count=1: it exits once the notification is shown
            assert listener.shown == 1
            assert server.hub.stats.tokens_expired == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_cli_listener_subscribes_again_when_its_token_runs_out(
    client: httpx.AsyncClient, runtime: Runtime, make_user: MakeUser, trigger: httpx.AsyncClient
) -> None:
    """The renewal brings no fresh token (the source keeps returning the first one),
    so the server ends the subscription; the listener takes the "access token
    expired" ERROR, forces a fresh token and subscribes again."""
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    tokens = ShortTokens(runtime, reader, 3, stale=True)
    async with dedicated_server(runtime, UdpConfig()) as server:
        listener, task = await listen_in_background(server, tokens)
        try:
            await wait_for(lambda: tokens.forced > 0 or task.done(), timeout=10)
            assert not task.done()
            assert server.hub.stats.tokens_expired >= 1
            await wait_for(lambda: len(server.hub) == 1)
            await new_chapter(trigger, manga_id, title, 8)
            async with asyncio.timeout(5):
                await task
            assert listener.shown == 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_cli_listener_subscribes_again_at_once_after_a_server_shutdown(
    runtime: Runtime, make_user: MakeUser
) -> None:
    """ "server shutting down; SUBSCRIBE again": the listener does so at once (a
    replacement is starting), not at its next PING a minute later."""
    reader = await make_user()
    tokens = ShortTokens(runtime, reader, 600)
    user_id = uuid.UUID(reader.id)
    first = UdpServer(runtime, "127.0.0.1", 0, UdpConfig())
    await first.start()
    port = first.address[1]
    listener, task = await listen_in_background(first, tokens)
    try:
        await first.stop(5)
        await asyncio.sleep(0.5)  # the replacement takes a moment to start
        second = UdpServer(runtime, "127.0.0.1", port, UdpConfig())
        await second.start()
        try:
            await wait_for(lambda: second.hub.subscriber(user_id) is not None, timeout=10)
            assert not task.done()
        finally:
            await second.stop(5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert listener.nonce is not None
