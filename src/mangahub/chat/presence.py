"""Who is in a room, across every server process (no I/O).

Each process knows its own members for sure. It tells the others over the room's bus
topic with an internal event, never shown to clients::

    {"type": "presence_sync", "node": "<process id>", "users": ["alice"], "reply": false}

sent when its set of local users changes, every ``refresh`` seconds while it has
members (so a crashed process is forgotten after ``3 * refresh``), and with
``"reply": true`` when it opens a room, asking the others to announce themselves.
A room's presence is the union of the local users and every live remote announcement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

SYNC_TYPE: Final = "presence_sync"


def sync_event(room_id: int, node: str, users: Iterable[str], *, reply: bool) -> dict[str, Any]:
    return {
        "type": SYNC_TYPE,
        "room_id": room_id,
        "node": node,
        "users": sorted(set(users)),
        "reply": reply,
    }


def parse_sync(event: Mapping[str, Any]) -> tuple[str, frozenset[str], bool] | None:
    """``(node, users, reply)`` of a well-formed sync event, else None (ignored)."""
    node, users = event.get("node"), event.get("users")
    if not isinstance(node, str) or not isinstance(users, list):
        return None
    return node, frozenset(u for u in users if isinstance(u, str)), bool(event.get("reply"))


class RoomPresence:
    """The union of this process's users and the other processes' announcements."""

    def __init__(self, node: str, refresh: float, clock: Callable[[], float]) -> None:
        self.node = node
        self._ttl = 3 * refresh
        self._clock = clock
        self._local: frozenset[str] = frozenset()
        self._remote: dict[str, tuple[frozenset[str], float]] = {}
        self._users: frozenset[str] = frozenset()

    @property
    def users(self) -> frozenset[str]:
        return self._users

    @property
    def local(self) -> frozenset[str]:
        return self._local

    def set_local(self, users: Iterable[str]) -> bool:
        """Replace this process's users; True when the room's presence changed."""
        self._local = frozenset(users)
        return self._recompute()

    def apply(self, node: str, users: frozenset[str]) -> bool:
        """Another process's announcement; True when the room's presence changed.
        Our own announcements (echoed by the bus) are ignored: local state is exact."""
        if node == self.node:
            return False
        if users:
            self._remote[node] = (users, self._clock() + self._ttl)
        else:
            self._remote.pop(node, None)
        return self._recompute()

    def expire(self) -> bool:
        """Forget processes that stopped refreshing; True when presence changed."""
        now = self._clock()
        stale = [node for node, (_, until) in self._remote.items() if until <= now]
        for node in stale:
            del self._remote[node]
        return bool(stale) and self._recompute()

    def _recompute(self) -> bool:
        users = self._local.union(*(u for u, _ in self._remote.values()))
        changed = users != self._users
        self._users = users
        return changed
