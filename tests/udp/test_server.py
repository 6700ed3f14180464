"""The UDP door and its trigger over real sockets on 127.0.0.1 (SPEC "UDP
notifications"): subscribe, receive, ACK, backlog, auth, bad input, loss, expiry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy import func, select

from mangahub.app import Runtime
from mangahub.domain.enums import Role
from mangahub.security.tokens import Principal, TokenCodec
from mangahub.servers import RunningServers
from mangahub.storage.models import User
from mangahub.udp.protocol import HubLimits, RetryPolicy
from mangahub.udp.server import UdpConfig
from tests.conftest import MakeUser
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

FAST_RETRY = RetryPolicy(initial=0.05, factor=2, max_interval=0.2, max_attempts=4)


async def test_udp_part_listens_on_udp_and_trigger(udp_part: RunningServers) -> None:
    assert [s.name for s in udp_part.servers] == ["udp", "trigger"]
    assert udp_part.address("udp")[1] > 0 and udp_part.address("trigger")[1] > 0


async def test_subscribe_receive_ack_marks_delivered(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    runtime: Runtime,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    udp = await open_client()
    subscribed = await udp.subscribe(reader.access_token)
    assert subscribed.pop("expires_in") > 0  # checked closely in test_session_lifetime
    assert subscribed.pop("nonce") == udp.nonce
    assert subscribed == {"type": "SUBSCRIBED", "user_id": reader.id}

    assert await new_chapter(trigger, manga_id, title, 12.5, 12) == 1
    message = await udp.recv_type("NOTIFICATION")
    assert message["kind"] == "new_chapter"
    assert message["manga_id"] == manga_id and message["title"] == title
    assert message["chapter"] == 12.5 and message["previous_chapter"] == 12
    assert "12.5" in message["message"]
    assert message["created_at"].endswith("Z") or "+00:00" in message["created_at"]
    assert (await delivered(runtime, message["id"])) == {message["id"]: False}

    udp.send({"type": "ACK", "id": message["id"]})
    await wait_delivered(runtime, message["id"])
    # The same row over HTTP: stored first, one row per recipient.
    r = await client.get("/api/notifications", headers=reader.headers)
    assert [n["id"] for n in r.json()["data"]] == [message["id"]]


async def test_only_followers_receive_a_new_chapter(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    runtime: Runtime,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    in_library, with_progress, stranger = await make_user(), await make_user(), await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, in_library, manga_id)
    r = await client.put(
        "/api/users/progress",
        json={"manga_id": manga_id, "chapter": 3},
        headers=with_progress.headers,
    )
    assert r.status_code == 200, r.text
    clients = {}
    for user in (in_library, with_progress, stranger):
        clients[user.id] = await open_client()
        await clients[user.id].subscribe(user.access_token)

    assert await new_chapter(trigger, manga_id, title, 4) == 2
    for user in (in_library, with_progress):
        [message] = await clients[user.id].notifications(1)
        assert message["chapter"] == 4 and message["previous_chapter"] is None
    await clients[stranger.id].expect_silence(0.3)
    r = await client.get("/api/notifications", headers=stranger.headers)
    assert r.json()["total"] == 0


async def test_offline_reader_gets_missed_notifications_on_subscribe(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    runtime: Runtime,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    for chapter in (1, 2, 3):
        assert await new_chapter(trigger, manga_id, title, chapter) == 1

    r = await client.get("/api/notifications", headers=reader.headers)
    assert [n["message"] for n in r.json()["data"]] == [
        f"Chapter {c} of {title} is out" for c in (3, 2, 1)
    ]

    udp = await open_client()
    await udp.subscribe(reader.access_token)
    missed = await udp.notifications(3)
    assert [m["chapter"] for m in missed] == [1, 2, 3]  # oldest first
    await wait_delivered(runtime, *(m["id"] for m in missed))

    # Delivered means not sent again on the next SUBSCRIBE.
    again = await open_client()
    await again.subscribe(reader.access_token)
    await again.expect_silence(0.3)


async def test_backlog_is_paged(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime, trigger: httpx.AsyncClient
) -> None:
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    for chapter in range(1, 8):
        await new_chapter(trigger, manga_id, title, chapter)
    async with dedicated_server(runtime, UdpConfig(backlog_page=3)) as server:
        udp = await UdpClient.open(server.address)
        try:
            await udp.subscribe(reader.access_token)
            got = await udp.notifications(7)
            assert [m["chapter"] for m in got] == [1, 2, 3, 4, 5, 6, 7]
            await wait_delivered(runtime, *(m["id"] for m in got))
        finally:
            udp.close()


async def test_bad_tokens_get_unauthorized(
    runtime: Runtime, make_user: MakeUser, open_client: OpenClient
) -> None:
    reader = await make_user()
    now = datetime.now(UTC)
    claims = {
        "sub": reader.id,
        "username": reader.username,
        "email": reader.email,
        "role": "admin",
        "iss": "mangahub",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    forged = jwt.encode(claims, "another-secret-that-is-long-enough-32+", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert runtime.settings.jwt_secret is not None
    codec = TokenCodec(runtime.settings.jwt_secret.get_secret_value(), 60)
    principal = Principal(uuid.UUID(reader.id), reader.username, reader.email, Role.USER)
    expired = codec.issue(principal, now=now - timedelta(hours=1))

    udp = await open_client()
    for token in (forged, unsigned, expired, "not-a-jwt"):
        reply = await udp.request({"type": "SUBSCRIBE", "token": token}, "ERROR")
        assert reply["code"] == "UNAUTHORIZED", reply
        assert reply["message"]
    # A user id instead of a token is a bad request, never a subscription.
    reply = await udp.request({"type": "SUBSCRIBE", "user_id": reader.id}, "ERROR")
    assert reply["code"] == "BAD_REQUEST"
    assert await udp.request({"type": "PING"}, "PONG") == {"type": "PONG", "subscribed": False}
    reply = await udp.request({"type": "ACK", "id": 1}, "ERROR")
    assert reply["code"] == "UNAUTHORIZED"


async def test_trigger_requires_the_internal_token(
    udp_part: RunningServers, runtime: Runtime, trigger: httpx.AsyncClient
) -> None:
    manga_id, title = await new_series(runtime)
    body = {"manga_id": manga_id, "title": title, "chapter": 2}
    host, port = udp_part.address("trigger")
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as outsider:
        for headers in ({}, {"X-Internal-Token": "wrong"}, {"X-Internal-Token": ""}):
            for path in ("/notify/new-chapter", "/notify/new-manga", "/nowhere"):
                r = await outsider.post(path, json=body, headers=headers)
                assert r.status_code == 401, (path, headers, r.text)
                assert r.json()["error"]["code"] == "unauthorized"
            r = await outsider.post("/notify/new-chapter", content=b"{{{", headers=headers)
            assert r.status_code == 401


async def test_trigger_validates_its_input(runtime: Runtime, trigger: httpx.AsyncClient) -> None:
    manga_id, title = await new_series(runtime)
    bad_bodies = [
        ("/notify/new-chapter", {"manga_id": manga_id, "title": title}),
        ("/notify/new-chapter", {"manga_id": "x", "title": title, "chapter": 1}),
        ("/notify/new-chapter", {"manga_id": manga_id, "title": title, "chapter": -1}),
        ("/notify/new-chapter", {"manga_id": manga_id, "title": "", "chapter": 1}),
        ("/notify/new-manga", {"manga_id": manga_id}),
        ("/notify/manga-update", {"manga_id": manga_id, "title": title, "changes": []}),
        ("/notify/manga-update", {"manga_id": manga_id, "title": title, "changes": [{}]}),
        ("/notify/manga-update", {"manga_id": manga_id, "title": title, "changes": "status"}),
    ]
    for path, body in bad_bodies:
        r = await trigger.post(path, json=body)
        assert r.status_code == 422, (path, body, r.text)
        error = r.json()["error"]
        assert error["code"] == "validation_error" and error["details"]
    r = await trigger.post(
        "/notify/new-manga", content=b"not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    r = await trigger.post(
        "/notify/new-chapter", json={"manga_id": 2**31 - 2, "title": "x", "chapter": 1}
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_new_manga_goes_to_everyone_and_updates_to_followers(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    runtime: Runtime,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    follower, other = await make_user(), await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, follower, manga_id)
    clients = [await open_client(), await open_client()]
    for udp, user in zip(clients, (follower, other), strict=True):
        await udp.subscribe(user.access_token)

    r = await trigger.post("/notify/new-manga", json={"manga_id": manga_id, "title": title})
    assert r.status_code == 202, r.text
    async with runtime.db.session() as s:
        users = await s.scalar(select(func.count()).select_from(User))
    assert r.json() == {"accepted": True, "recipients": users}
    for udp in clients:
        [message] = await udp.notifications(1)
        assert (message["kind"], message["manga_id"], message["title"]) == (
            "new_manga",
            manga_id,
            title,
        )
        assert "chapter" not in message

    changes = [{"field": "status", "old_value": "ongoing", "new_value": "completed"}]
    r = await trigger.post(
        "/notify/manga-update", json={"manga_id": manga_id, "title": title, "changes": changes}
    )
    assert r.json() == {"accepted": True, "recipients": 1}
    [message] = await clients[0].notifications(1)
    assert message["kind"] == "manga_update"
    assert message["data"]["changes"] == changes
    assert "ongoing → completed" in message["message"]
    await clients[1].expect_silence(0.3)


async def test_garbage_gets_bad_request_and_the_server_keeps_serving(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    runtime: Runtime,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    udp = await open_client()
    await udp.subscribe(reader.access_token)
    garbage = [
        b"hello",
        b"\xff\xfe\x00",
        b"[]",
        b'{"type": 1}',
        b'{"type": "EXPLODE"}',
        b'{"type": "ACK", "id": "7"}',
        b'{"type": "SUBSCRIBE", "token": 7}',
        b'{"type":"PING","pad":"' + b"x" * 9000 + b'"}',
        b"{" * 5000,
    ]
    for raw in garbage:
        reply = await udp.request(raw, "ERROR")
        assert reply["code"] == "BAD_REQUEST", (raw[:40], reply)
    # Still subscribed (garbage does not unsubscribe), still serving.
    assert await udp.request({"type": "PING"}, "PONG") == {"type": "PONG", "subscribed": True}
    await new_chapter(trigger, manga_id, title, 1)
    [message] = await udp.notifications(1)
    await wait_delivered(runtime, message["id"])


async def test_ack_counts_only_for_the_users_own_notification(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    runtime: Runtime,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    alice, bob = await make_user(), await make_user()
    manga_id, title = await new_series(runtime)
    for user in (alice, bob):
        await follow(client, user, manga_id)
    udp_alice, udp_bob = await open_client(), await open_client()
    await udp_alice.subscribe(alice.access_token)
    await udp_bob.subscribe(bob.access_token)
    await new_chapter(trigger, manga_id, title, 9)
    [mine] = await udp_alice.notifications(1, ack=False)
    [bobs] = await udp_bob.notifications(1, ack=False)

    udp_alice.send({"type": "ACK", "id": bobs["id"]})
    udp_alice.send({"type": "ACK", "id": mine["id"]})
    await wait_delivered(runtime, mine["id"])  # ACKs are written in order
    assert await delivered(runtime, bobs["id"]) == {bobs["id"]: False}


async def test_unsubscribe_stops_delivery(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    runtime: Runtime,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    udp = await open_client()
    await udp.subscribe(reader.access_token)
    assert await udp.request({"type": "UNSUBSCRIBE"}, "UNSUBSCRIBED") == {"type": "UNSUBSCRIBED"}
    await new_chapter(trigger, manga_id, title, 1)
    await udp.expect_silence(0.3)
    assert await udp.request({"type": "PING"}, "PONG") == {"type": "PONG", "subscribed": False}


async def test_resubscribe_from_a_new_address_takes_over(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    runtime: Runtime,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    """A NAT rebinding looks like a new source port: the latest SUBSCRIBE wins."""
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    old, new = await open_client(), await open_client()
    await old.subscribe(reader.access_token)
    await new.subscribe(reader.access_token)
    await new_chapter(trigger, manga_id, title, 1)
    [message] = await new.notifications(1)
    await wait_delivered(runtime, message["id"])
    await old.expect_silence(0.2)


async def test_lossy_network_still_delivers_each_notification_once(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime, trigger: httpx.AsyncClient
) -> None:
    """Every first copy is lost; re-sends and SUBSCRIBE retries get everything through,
    and deduplication by id shows the application each notification exactly once."""
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    await new_chapter(trigger, manga_id, title, 1)  # one waiting in the backlog
    async with dedicated_server(runtime, UdpConfig(retry=FAST_RETRY)) as server:
        udp = await UdpClient.open(server.address, lossy=True)
        try:
            await udp.subscribe(reader.access_token)
            for chapter in (2, 3, 4, 5):
                await new_chapter(trigger, manga_id, title, chapter)
            got = await udp.notifications(5)
            assert sorted(m["chapter"] for m in got) == [1, 2, 3, 4, 5]
            assert len({m["id"] for m in got}) == 5
            await wait_delivered(runtime, *(m["id"] for m in got))
            assert all(copies >= 1 for copies in udp.copies.values())
            assert udp.dropped >= 6  # SUBSCRIBED and every NOTIFICATION's first copy
            assert server.hub.stats.resent >= 5
            await udp.expect_silence(0.5)  # ACKed: no more copies
        finally:
            udp.close()


async def test_unacked_notifications_are_resent_then_given_up(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime, trigger: httpx.AsyncClient
) -> None:
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    async with dedicated_server(runtime, UdpConfig(retry=FAST_RETRY)) as server:
        udp = await UdpClient.open(server.address)
        try:
            await udp.subscribe(reader.access_token)
            await new_chapter(trigger, manga_id, title, 1)
            first = await udp.recv_type("NOTIFICATION")
            await asyncio.sleep(0.05 + 0.1 + 0.2 + 0.3)
            assert udp.copies[first["id"]] == FAST_RETRY.max_attempts
            udp.drain()
            await udp.expect_silence(0.3)
            assert await delivered(runtime, first["id"]) == {first["id"]: False}
            # Still stored as undelivered: the next subscription brings it again (a
            # SUBSCRIBE from the subscribed address only renews; UNSUBSCRIBE first).
            await udp.request({"type": "UNSUBSCRIBE"}, "UNSUBSCRIBED")
            await udp.subscribe(reader.access_token)
            [again] = await udp.notifications(1)
            assert again["id"] == first["id"]
            await wait_delivered(runtime, first["id"])
        finally:
            udp.close()
            await asyncio.sleep(0)
        assert server.hub.stats.gave_up == 1


async def test_silent_subscribers_expire_and_ping_renews(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime, trigger: httpx.AsyncClient
) -> None:
    pinging, silent = await make_user(), await make_user()
    manga_id, title = await new_series(runtime)
    for user in (pinging, silent):
        await follow(client, user, manga_id)
    config = UdpConfig(limits=HubLimits(subscriber_ttl=0.4))
    async with dedicated_server(runtime, config) as server:
        udp_pinging = await UdpClient.open(server.address)
        udp_silent = await UdpClient.open(server.address)
        try:
            await udp_pinging.subscribe(pinging.access_token)
            await udp_silent.subscribe(silent.access_token)
            for _ in range(5):
                await asyncio.sleep(0.15)
                assert (await udp_pinging.request({"type": "PING"}, "PONG"))["subscribed"]
            assert len(server.hub) == 1
            await new_chapter(trigger, manga_id, title, 1)
            [message] = await udp_pinging.notifications(1)
            await udp_silent.expect_silence(0.2)
            reply = await udp_silent.request({"type": "PING"}, "PONG")
            assert reply == {"type": "PONG", "subscribed": False}
            await wait_delivered(runtime, message["id"])
            stop = asyncio.create_task(server.stop(5))
            # Shutting down: a live subscriber is told to subscribe again.
            goodbye = await udp_pinging.recv_type("ERROR")
            assert goodbye["code"] == "UNAVAILABLE"
            await stop
        finally:
            udp_pinging.close()
            udp_silent.close()


@pytest.mark.parametrize("count", [12])
async def test_many_subscribers_fan_out(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    runtime: Runtime,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
    count: int,
) -> None:
    manga_id, title = await new_series(runtime)
    users = [await make_user() for _ in range(count)]
    clients: list[UdpClient] = []
    for user in users:
        await follow(client, user, manga_id)
        udp = await open_client()
        await udp.subscribe(user.access_token)
        clients.append(udp)
    assert await new_chapter(trigger, manga_id, title, 1) == count
    messages = await asyncio.gather(*(udp.notifications(1) for udp in clients))
    ids = [m[0]["id"] for m in messages]
    assert len(set(ids)) == count
    await wait_delivered(runtime, *ids)


async def test_an_address_that_never_answers_gets_no_backlog(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    runtime: Runtime,
    open_client: OpenClient,
    trigger: httpx.AsyncClient,
) -> None:
    """What a SUBSCRIBE forged with a victim's source address looks like from the
    victim's socket: one SUBSCRIBED, then silence, although the forger's account has
    undelivered notifications (and would get them re-sent)."""
    forger = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, forger, manga_id)
    assert await new_chapter(trigger, manga_id, title, 3, 2) == 1
    victim = await open_client()
    victim.send({"type": "SUBSCRIBE", "token": forger.access_token})
    assert (await victim.recv())["type"] == "SUBSCRIBED"
    await victim.expect_silence(2.5)  # past the first re-send
    # The real client answers with the nonce and gets its backlog at once.
    owner = await open_client()
    await owner.subscribe(forger.access_token)
    [note] = await owner.notifications(1)
    assert note["manga_id"] == manga_id
