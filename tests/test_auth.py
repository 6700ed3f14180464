"""Accounts and sessions over HTTP: register, login, refresh rotation, revoke, /me."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from mangahub.app import Runtime
from mangahub.cache import MemoryCache
from mangahub.domain.schemas import LoginIn
from mangahub.security.tokens import TokenCodec, hash_refresh_token
from mangahub.services.auth import AuthService
from mangahub.storage.database import Database
from mangahub.storage.models import RefreshToken, User
from mangahub.storage.types import utcnow
from tests.conftest import ADMIN_PASSWORD, Backend, MakeUser
from tests.test_security import client_at

PASSWORD = "correct-horse-battery"


def new_name(prefix: str = "user") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def register(
    client: httpx.AsyncClient, username: str, email: str | None = None, **extra: Any
) -> httpx.Response:
    body = {"username": username, "email": email or f"{username}@example.com", "password": PASSWORD}
    return await client.post("/api/auth/register", json={**body, **extra})


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, prefix: str = "/api/auth"
) -> httpx.Response:
    return await client.post(f"{prefix}/login", json={"username": username, "password": password})


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": token})


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get("/api/users/me", headers={"Authorization": f"Bearer {access_token}"})


def fields(response: httpx.Response) -> set[str]:
    return {d["field"] for d in response.json()["error"]["details"]}


# --- register ---------------------------------------------------------------------------


async def test_register_returns_the_public_user(client: httpx.AsyncClient) -> None:
    name = new_name()
    r = await register(client, name)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "username", "email", "role", "created_at"}
    assert body["username"] == name
    assert body["email"] == f"{name}@example.com"
    assert body["role"] == "user"
    uuid.UUID(body["id"])
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")


async def test_register_stores_a_bcrypt_hash_never_the_password(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    name = new_name()
    assert (await register(client, name)).status_code == 201
    async with runtime.db.session() as s:
        stored = await s.scalar(select(User.password_hash).where(User.username == name))
    assert stored is not None and PASSWORD not in stored
    assert stored.startswith("$2b$")
    assert int(stored.split("$")[2]) >= 10  # bcrypt cost


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "short"}, "password"),
        ({"username": "no spaces allowed"}, "username"),
        ({"username": "ab"}, "username"),
        ({"username": "x" * 51}, "username"),
        ({"username": "bad!name"}, "username"),
        ({"email": "not-an-email"}, "email"),
        ({"email": None}, "email"),
        ({"password": 12345678}, "password"),
        ({"password": "x" * 73}, "password"),
        ({"password": "é" * 40}, "password"),  # 40 characters, but 80 bytes for bcrypt
    ],
)
async def test_register_rejects_invalid_fields(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    name = new_name()
    payload = {"username": name, "email": f"{name}@example.com", "password": PASSWORD, **body}
    r = await client.post("/api/auth/register", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert field in fields(r)


@pytest.mark.parametrize("missing", ["username", "email", "password"])
async def test_register_requires_every_field(client: httpx.AsyncClient, missing: str) -> None:
    name = new_name()
    payload = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    del payload[missing]
    r = await client.post("/api/auth/register", json=payload)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert missing in fields(r)


async def test_duplicate_username_is_a_conflict_whatever_the_case(
    client: httpx.AsyncClient,
) -> None:
    name = new_name("Dup")
    assert (await register(client, name)).status_code == 201
    for taken in (name, name.upper(), name.lower()):
        r = await register(client, taken, email=f"other_{uuid.uuid4().hex[:8]}@example.com")
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "conflict"
        assert "username" in r.json()["error"]["message"]


async def test_duplicate_email_is_a_conflict_whatever_the_case(client: httpx.AsyncClient) -> None:
    email = f"{new_name()}@example.com"
    assert (await register(client, new_name(), email=email)).status_code == 201
    r = await register(client, new_name(), email=email.upper())
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    assert "email" in r.json()["error"]["message"]


async def test_email_is_stored_lower_case(client: httpx.AsyncClient) -> None:
    name = new_name()
    r = await register(client, name, email=f"{name.upper()}@Example.COM")
    assert r.status_code == 201
    assert r.json()["email"] == f"{name}@example.com"


async def test_concurrent_registrations_of_one_name_give_one_account(
    client: httpx.AsyncClient,
) -> None:
    name = new_name()
    answers = await asyncio.gather(
        *(register(client, name, email=f"{name}_{i}@example.com") for i in range(4))
    )
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409]


async def test_register_cannot_grant_a_role_or_an_id(client: httpx.AsyncClient) -> None:
    name = new_name()
    forced_id = str(uuid.uuid4())
    r = await register(client, name, role="admin", id=forced_id, is_admin=True)
    assert r.status_code == 201
    assert r.json()["role"] == "user"
    assert r.json()["id"] != forced_id
    token = (await login(client, name)).json()["access_token"]
    assert (await me(client, token)).json()["role"] == "user"


# --- login ------------------------------------------------------------------------------


async def test_login_by_username_returns_a_token_pair(client: httpx.AsyncClient) -> None:
    name = new_name()
    user = (await register(client, name)).json()
    r = await login(client, name)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert body["user"] == user
    assert body["access_token"] and body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]


async def test_access_token_carries_the_spec_claims(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    name = new_name()
    user = (await register(client, name)).json()
    token = (await login(client, name)).json()["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert runtime.settings.jwt_secret is not None
    claims = jwt.decode(token, runtime.settings.jwt_secret.get_secret_value(), algorithms=["HS256"])
    assert claims["sub"] == user["id"]
    assert claims["username"] == name
    assert claims["email"] == user["email"]
    assert claims["role"] == "user"
    assert claims["iss"] == "mangahub"
    assert isinstance(claims["scopes"], list)
    assert claims["exp"] - claims["iat"] == 15 * 60


async def test_login_by_email_in_any_case(client: httpx.AsyncClient) -> None:
    name = new_name()
    assert (await register(client, name)).status_code == 201
    for identifier in (f"{name}@example.com", f"{name.upper()}@EXAMPLE.com"):
        r = await login(client, identifier)
        assert r.status_code == 200, r.text
        assert r.json()["user"]["username"] == name


async def test_login_username_ignores_case(client: httpx.AsyncClient) -> None:
    name = new_name("Mixed")
    assert (await register(client, name)).status_code == 201
    r = await login(client, name.lower())
    assert r.status_code == 200
    assert r.json()["user"]["username"] == name  # stored as registered


async def test_wrong_password_and_unknown_user_answer_the_same(app: FastAPI) -> None:
    async with client_at(app) as client:
        name = new_name()
        assert (await register(client, name)).status_code == 201
        wrong = await login(client, name, "wrong-password!")
        unknown = await login(client, new_name("ghost"), PASSWORD)
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"
    assert wrong.json() == unknown.json()


async def test_password_is_case_and_whitespace_sensitive(app: FastAPI) -> None:
    async with client_at(app) as client:
        name = new_name()
        assert (await register(client, name)).status_code == 201
        assert (await login(client, name, PASSWORD.upper())).status_code == 401
        assert (await login(client, name, f" {PASSWORD}")).status_code == 401


async def test_login_validation_error(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/auth/login", json={"username": "someone"})
    assert r.status_code == 422
    assert "password" in fields(r)


async def test_legacy_auth_paths_answer_like_the_api_ones(client: httpx.AsyncClient) -> None:
    name = new_name()
    r = await client.post(
        "/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )
    assert r.status_code == 201
    legacy = await login(client, name, prefix="/auth")
    current = await login(client, name)
    assert legacy.status_code == current.status_code == 200
    assert set(legacy.json()) == set(current.json())
    assert legacy.json()["user"] == current.json()["user"]

    r = await client.post("/auth/refresh", json={"refresh_token": legacy.json()["refresh_token"]})
    assert r.status_code == 200
    assert set(r.json()) == set(current.json())
    r = await client.post("/auth/revoke", json={"refresh_token": r.json()["refresh_token"]})
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_legacy_login_rejects_like_the_api_one(app: FastAPI) -> None:
    async with client_at(app) as client:
        name = new_name()
        assert (await register(client, name)).status_code == 201
        legacy = await login(client, name, "wrong-password!", prefix="/auth")
        current = await login(client, name, "wrong-password!")
    assert legacy.status_code == current.status_code == 401
    assert legacy.json() == current.json()


async def test_trailing_slash_is_tolerated(client: httpx.AsyncClient) -> None:
    name = new_name()
    r = await client.post(
        "/api/auth/register/",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )
    assert r.status_code == 201
    r = await client.post("/api/auth/login/", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200
    r = await client.get(
        "/api/users/me/", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert r.status_code == 200


async def test_admin_exists_and_logs_in(client: httpx.AsyncClient) -> None:
    r = await login(client, "admin", ADMIN_PASSWORD)
    assert r.status_code == 200
    assert r.json()["user"]["role"] == "admin"


# --- /api/users/me ------------------------------------------------------------------------


async def test_me_returns_the_caller(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    r = await client.get("/api/users/me", headers=user.headers)
    assert r.status_code == 200
    assert r.json() == {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "role": "user",
        "created_at": r.json()["created_at"],
    }


async def test_me_requires_a_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/users/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


async def test_me_for_a_deleted_user_is_not_found(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    async with runtime.db.session() as s:
        await s.delete(await s.get(User, uuid.UUID(user.id)))
    r = await client.get("/api/users/me", headers=user.headers)
    assert r.status_code == 404
    # Its refresh tokens went with it.
    assert (await refresh(client, user.refresh_token)).status_code == 401


# --- refresh and revoke ------------------------------------------------------------------


async def test_refresh_rotates_and_reuse_kills_the_family(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    r = await refresh(client, user.refresh_token)
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != user.refresh_token
    assert second["user"]["id"] == user.id
    assert (await me(client, second["access_token"])).status_code == 200

    third = (await refresh(client, second["refresh_token"])).json()
    assert "refresh_token" in third

    # The first token was already exchanged: presenting it again is reuse.
    r = await refresh(client, user.refresh_token)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    # ...and it took the newest token of the same family with it.
    assert (await refresh(client, third["refresh_token"])).status_code == 401


async def test_reuse_does_not_touch_other_sessions(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    other_session = (await login(client, user.username, user.password)).json()
    assert (await refresh(client, user.refresh_token)).status_code == 200
    assert (await refresh(client, user.refresh_token)).status_code == 401
    assert (await refresh(client, other_session["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_with_one_token_have_one_winner(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    answers = await asyncio.gather(*(refresh(client, user.refresh_token) for _ in range(3)))
    assert sorted(r.status_code for r in answers) == [200, 401, 401]


async def test_refresh_rejects_unknown_and_expired_tokens(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    assert (await refresh(client, "not-a-token")).status_code == 401
    user = await make_user()
    async with runtime.db.session() as s:
        row = await s.scalar(
            select(RefreshToken).where(
                RefreshToken.token_hash == hash_refresh_token(user.refresh_token)
            )
        )
        assert row is not None
        row.expires_at = utcnow()
    r = await refresh(client, user.refresh_token)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


async def test_refresh_tokens_are_stored_only_hashed(make_user: MakeUser, runtime: Runtime) -> None:
    user = await make_user()
    async with runtime.db.session() as s:
        hashes = list(await s.scalars(select(RefreshToken.token_hash)))
    assert hash_refresh_token(user.refresh_token) in hashes
    assert user.refresh_token not in hashes


async def test_revoke_ends_the_session(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    rotated = (await refresh(client, user.refresh_token)).json()["refresh_token"]
    r = await client.post("/api/auth/revoke", json={"refresh_token": rotated})
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert (await refresh(client, rotated)).status_code == 401


async def test_revoking_an_old_token_ends_its_family(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    rotated = (await refresh(client, user.refresh_token)).json()["refresh_token"]
    r = await client.post("/api/auth/revoke", json={"refresh_token": user.refresh_token})
    assert r.status_code == 200
    assert (await refresh(client, rotated)).status_code == 401


@pytest.mark.parametrize("token", ["garbage", "x" * 512, "' OR 1=1 --"])
async def test_revoke_answers_ok_for_unknown_tokens(client: httpx.AsyncClient, token: str) -> None:
    r = await client.post("/api/auth/revoke", json={"refresh_token": token})
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_revoke_twice_is_fine(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    for _ in range(2):
        r = await client.post("/api/auth/revoke", json={"refresh_token": user.refresh_token})
        assert r.status_code == 200


# --- the first admin ------------------------------------------------------------------


async def test_ensure_admin_is_idempotent(runtime: Runtime) -> None:
    assert await runtime.auth.ensure_admin(None) is None
    assert await runtime.auth.ensure_admin("another-password") is None


async def test_ensure_admin_on_a_fresh_database_under_a_race(
    backend: Backend, tmp_path: Path
) -> None:
    """Two processes starting at once: one creates the admin, the other shrugs."""
    settings = backend.settings(data_dir=tmp_path, database_url=None, redis_url=None)
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
        tokens = TokenCodec("t" * 40, 900)
        services = [AuthService(db, MemoryCache(), tokens, settings) for _ in range(2)]
        results = await asyncio.gather(*(svc.ensure_admin(None) for svc in services))
        generated = [p for p in results if p is not None]
        assert len(generated) == 1
        assert len(generated[0]) >= 16
        pair = await services[0].login(LoginIn(username="admin", password=generated[0]), "::1")
        assert pair.user.role == "admin"
        assert await services[1].ensure_admin(None) is None
    finally:
        await db.close()
