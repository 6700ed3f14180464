"""bcrypt hashing, run off the event loop (a hash costs ~0.1-0.3 s of CPU)."""

from __future__ import annotations

import asyncio

import bcrypt

# A real hash of a random password: verifying against it when the user does not
# exist costs the same time, so response timing does not reveal which usernames exist.
_DUMMY_HASH = b"$2b$12$x/eiq.qg36d3rv7/KG8bHO1J6ED2RVKF8H1N18CHnPDLaR.Q9/nJC"


async def hash_password(password: str, rounds: int) -> str:
    def work() -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()

    return await asyncio.to_thread(work)


async def verify_password(password: str, password_hash: str | None) -> bool:
    def work() -> bool:
        try:
            return bcrypt.checkpw(password.encode(), (password_hash or "").encode() or _DUMMY_HASH)
        except ValueError:
            return False

    ok = await asyncio.to_thread(work)
    return ok and password_hash is not None
