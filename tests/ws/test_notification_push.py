"""Every authenticated WebSocket receives its user's new notifications (browsers
cannot receive UDP), whatever room it is in, and nobody else's."""

from __future__ import annotations

import uuid

from mangahub.app import Runtime
from mangahub.domain.enums import NotificationKind
from tests.conftest import MakeUser
from tests.ws.conftest import Connect


async def test_a_stored_notification_reaches_the_users_sockets_only(
    runtime: Runtime, make_user: MakeUser, ws_connect: Connect
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    first, second = await ws_connect(alice.access_token), await ws_connect(alice.access_token)
    other = await ws_connect(bob.access_token)

    stored = await runtime.notifications.notify_users(
        [uuid.UUID(alice.id)], NotificationKind.SYSTEM, None, "Maintenance", "<b>tonight</b>"
    )
    assert stored == 1

    for client in (first, second):
        pushed = await client.recv_type("notification")
        data = pushed["data"]
        assert data["title"] == "Maintenance"
        assert data["message"] == "<b>tonight</b>"
        assert data["kind"] == "system" and data["read"] is False
        assert isinstance(data["id"], int) and "user_id" not in data
    await other.expect_silence()
