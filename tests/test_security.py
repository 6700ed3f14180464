"""Attacks on authentication: bad tokens, brute force, privilege, injection."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from mangahub.app import Runtime
from mangahub.config import Settings
from mangahub.domain.enums import Role
from mangahub.http.app import create_app
from mangahub.security.tokens import Principal, TokenCodec, renew_after
from mangahub.services.auth import AuthService
from mangahub.storage.models import User
from tests.conftest import MakeUser, UserSession

PASSWORD = "correct-horse-battery"


def real_secret(runtime: Runtime) -> str:
    assert runtime.settings.jwt_secret is not None
    return runtime.settings.jwt_secret.get_secret_value()


def claims_of(user: UserSession, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": user.id,
        "username": user.username,
        "email": user.email,
        "role": "admin",
        "scopes": ["read", "write"],
        "iss": "mangahub",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=15)).timestamp()),
    }
    claims.update(overrides)
    return claims


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], claims: dict[str, Any], secret: str) -> str:
    """A JWT with any header, HMAC-SHA256-signed: the classic algorithm-confusion probe."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    signature = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).sign(
        signing_input.encode(), secret.encode()
    )
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def assert_unauthorized(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await client.get("/api/users/me", headers=headers)
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["code"] == "unauthorized"
    assert error["message"]
    assert r.headers["www-authenticate"] == "Bearer"


# --- access tokens ------------------------------------------------------------------


async def test_token_signed_with_another_secret_is_rejected(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    forged = jwt.encode(claims_of(user), "another-secret-" + "x" * 49, algorithm="HS256")
    await assert_unauthorized(client, {"Authorization": f"Bearer {forged}"})


async def test_expired_token_is_rejected(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    codec = TokenCodec(real_secret(runtime), ttl_seconds=900)
    principal = Principal(
        user_id=uuid.UUID(user.id), username=user.username, email=user.email, role=Role.USER
    )
    expired = codec.issue(principal, now=datetime.now(UTC) - timedelta(hours=1))
    await assert_unauthorized(client, {"Authorization": f"Bearer {expired}"})
    # The same codec with a current clock is accepted: only the time was wrong.
    fresh = codec.issue(principal)
    r = await client.get("/api/users/me", headers={"Authorization": f"Bearer {fresh}"})
    assert r.status_code == 200


async def test_alg_none_token_is_rejected(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims_of(user))}."
        await assert_unauthorized(client, {"Authorization": f"Bearer {unsigned}"})


async def test_only_hs256_is_accepted(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    secret = real_secret(runtime)
    hs512 = jwt.encode(claims_of(user), secret, algorithm="HS512")
    await assert_unauthorized(client, {"Authorization": f"Bearer {hs512}"})
    for alg in ("RS256", "ES256", "HS384"):
        confused = hand_signed({"alg": alg, "typ": "JWT"}, claims_of(user), secret)
        await assert_unauthorized(client, {"Authorization": f"Bearer {confused}"})
    # Control: the same hand-made token with the honest header passes, so the probes
    # above failed because of their algorithm and nothing else.
    honest = hand_signed({"alg": "HS256", "typ": "JWT"}, claims_of(user, role="user"), secret)
    r = await client.get("/api/users/me", headers={"Authorization": f"Bearer {honest}"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "someone-else"},
        {"sub": "not-a-uuid"},
        {"role": "superuser"},
        {"exp": None},
        {"iss": None},
    ],
)
async def test_well_signed_but_wrong_claims_are_rejected(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime, overrides: dict[str, Any]
) -> None:
    user = await make_user()
    claims = {k: v for k, v in claims_of(user, **overrides).items() if v is not None}
    token = jwt.encode(claims, real_secret(runtime), algorithm="HS256")
    await assert_unauthorized(client, {"Authorization": f"Bearer {token}"})


async def test_tampered_payload_is_rejected(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    header, _, signature = user.access_token.split(".")
    tampered = f"{header}.{b64(claims_of(user, role='admin'))}.{signature}"
    await assert_unauthorized(client, {"Authorization": f"Bearer {tampered}"})


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Bearer",
        "Bearer ",
        "Bearer not.a.jwt",
        "Bearer abc",
        "Basic dXNlcjpwYXNz",
        "Token abc.def.ghi",
        "Bearer a.b.c.d",
    ],
)
async def test_malformed_authorization_header(client: httpx.AsyncClient, value: str) -> None:
    await assert_unauthorized(client, {"Authorization": value})


async def test_missing_authorization_header(client: httpx.AsyncClient) -> None:
    await assert_unauthorized(client, {})


async def test_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    await assert_unauthorized(client, {"Authorization": f"Bearer {user.refresh_token}"})


async def test_access_token_is_not_a_refresh_token(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    r = await client.post("/api/auth/refresh", json={"refresh_token": user.access_token})
    assert r.status_code == 401


# --- privilege ----------------------------------------------------------------------


async def test_admin_route_is_forbidden_to_normal_users(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    body = {"title": f"Forbidden {uuid.uuid4().hex[:6]}", "status": "ongoing"}
    r = await client.post("/api/manga", json=body, headers=user.headers)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    r = await client.post("/api/manga", json=body)
    assert r.status_code == 401


async def test_self_signed_admin_role_does_not_work(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    forged = jwt.encode(claims_of(user, role="admin"), "guessed-secret-" + "y" * 49)
    r = await client.post(
        "/api/manga", json={"title": "Nope"}, headers={"Authorization": f"Bearer {forged}"}
    )
    assert r.status_code == 401


# --- brute force ------------------------------------------------------------------


_addresses = itertools.count()


@asynccontextmanager
async def client_at(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client with an address of its own, so failed logins never lock out other tests
    (they all share the `client` fixture's address)."""
    n = next(_addresses)
    address = f"10.9.{n // 250}.{n % 250 + 1}"
    transport = httpx.ASGITransport(app=app, client=(address, 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def new_account(client: httpx.AsyncClient, prefix: str = "victim") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    r = await client.post(
        "/api/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )
    assert r.status_code == 201, r.text
    return name


async def attempt(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": username, "password": password})


def assert_locked(r: httpx.Response, window: int) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= window


async def test_account_locks_after_repeated_failures(app: FastAPI, runtime: Runtime) -> None:
    limit = runtime.settings.login_max_failures_per_account
    window = runtime.settings.login_failure_window_seconds
    async with client_at(app) as c:
        name = await new_account(c)
        for _ in range(limit):
            assert (await attempt(c, name, "wrong-password!")).status_code == 401
        assert_locked(await attempt(c, name, "wrong-password!"), window)
        # Locked means locked: the right password gets no answer about itself.
        assert_locked(await attempt(c, name, PASSWORD), window)
        assert_locked(await attempt(c, f"{name}@example.com", PASSWORD), window)
    # The lock is on the account, not just the address it was attacked from.
    async with client_at(app) as elsewhere:
        assert_locked(await attempt(elsewhere, name, PASSWORD), window)


async def test_parallel_guesses_cannot_outrun_the_lock(app: FastAPI, runtime: Runtime) -> None:
    """A burst of guesses in flight at once still gets only the allowed number."""
    limit = runtime.settings.login_max_failures_per_account
    async with client_at(app) as c:
        name = await new_account(c)
        answers = await asyncio.gather(
            *(attempt(c, name, f"guess-{i}-password") for i in range(limit * 3))
        )
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [401] * limit + [429] * (limit * 2)
        assert (await attempt(c, name, PASSWORD)).status_code == 429


async def test_username_and_email_share_one_account_counter(app: FastAPI, runtime: Runtime) -> None:
    limit = runtime.settings.login_max_failures_per_account
    async with client_at(app) as c:
        name = await new_account(c)
        for i in range(limit):
            identifier = name if i % 2 else f"{name.upper()}@example.com"
            assert (await attempt(c, identifier, "wrong-password!")).status_code == 401
        assert (await attempt(c, name, PASSWORD)).status_code == 429


async def test_success_clears_earlier_typos(app: FastAPI, runtime: Runtime) -> None:
    limit = runtime.settings.login_max_failures_per_account
    async with client_at(app) as c:
        name = await new_account(c)
        for _ in range(2):
            for _ in range(limit - 1):
                assert (await attempt(c, name, "typo-password")).status_code == 401
            assert (await attempt(c, name, PASSWORD)).status_code == 200


async def test_unknown_usernames_are_guarded_too(app: FastAPI, runtime: Runtime) -> None:
    limit = runtime.settings.login_max_failures_per_account
    ghost = f"ghost_{uuid.uuid4().hex[:10]}"
    async with client_at(app) as c:
        for _ in range(limit):
            assert (await attempt(c, ghost, "whatever-password")).status_code == 401
        assert (await attempt(c, ghost, "whatever-password")).status_code == 429


@pytest.fixture
def strict_app(runtime: Runtime) -> FastAPI:
    """The app with the production per-address limit (the suite's own runtime raises
    it: every other test logs in from 127.0.0.1)."""
    default = Settings.model_fields["login_max_failures_per_address"].default
    settings = runtime.settings.model_copy(update={"login_max_failures_per_address": default})
    auth = AuthService(runtime.db, runtime.cache, runtime.tokens, settings)
    return create_app(dataclasses.replace(runtime, settings=settings, auth=auth))


async def test_address_limit_spans_accounts(strict_app: FastAPI, runtime: Runtime) -> None:
    app = strict_app
    per_account = runtime.settings.login_max_failures_per_account
    per_address = Settings.model_fields["login_max_failures_per_address"].default
    window = runtime.settings.login_failure_window_seconds
    async with client_at(app) as c:
        victim = await new_account(c)
        for _ in range(per_account):
            assert (await attempt(c, victim, "wrong-password!")).status_code == 401
        assert (await attempt(c, victim, PASSWORD)).status_code == 429

        # Another account from the same address still works...
        bystander = await new_account(c, "bystander")
        assert (await attempt(c, bystander, PASSWORD)).status_code == 200

        # ...until the address as a whole has failed too often.
        failures = per_account
        while failures < per_address:
            target = await new_account(c, "sprayed")
            for _ in range(min(per_account, per_address - failures)):
                assert (await attempt(c, target, "wrong-password!")).status_code == 401
                failures += 1
        assert_locked(await attempt(c, bystander, PASSWORD), window)

    # Other addresses are unaffected.
    async with client_at(app) as other:
        assert (await attempt(other, bystander, PASSWORD)).status_code == 200


# --- injection and hostile text ----------------------------------------------------


@pytest.mark.parametrize(
    "username",
    [
        "robert'); DROP TABLE users;--",
        "' OR '1'='1",
        "<script>alert(1)</script>",
        "name\x00null",
        "nàme",
        "a b",
    ],
)
async def test_hostile_usernames_are_rejected_by_validation(
    client: httpx.AsyncClient, username: str
) -> None:
    r = await client.post(
        "/api/auth/register",
        json={
            "username": username,
            "email": f"{uuid.uuid4().hex}@example.com",
            "password": PASSWORD,
        },
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("email", ["<script>@example.com", "a'--@example.com\"", "x@<b>.com"])
async def test_hostile_emails_are_rejected_or_stored_verbatim(
    client: httpx.AsyncClient, email: str
) -> None:
    name = f"mail_{uuid.uuid4().hex[:10]}"
    r = await client.post(
        "/api/auth/register", json={"username": name, "email": email, "password": PASSWORD}
    )
    assert r.status_code in (201, 422), r.text
    if r.status_code == 201:
        assert r.json()["email"] == email.lower()


async def test_sql_metacharacters_in_login_are_plain_text(app: FastAPI, runtime: Runtime) -> None:
    async with runtime.db.session() as s:
        users_before = await s.scalar(select(func.count()).select_from(User))
    for probe in ("' OR '1'='1", "admin'--", "admin' OR 1=1;--", "%", "_", "admin%"):
        async with client_at(app) as c:
            r = await attempt(c, probe, "' OR '1'='1")
        assert r.status_code == 401, r.text
    async with runtime.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(User)) == users_before


async def test_symbol_rich_valid_username_is_stored_verbatim(client: httpx.AsyncClient) -> None:
    name = f"a.b-c_{uuid.uuid4().hex[:8]}-.."
    r = await client.post(
        "/api/auth/register",
        json={"username": name, "email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD},
    )
    assert r.status_code == 201
    assert r.json()["username"] == name


async def test_password_is_never_echoed(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user(password="a-very-distinct-secret")
    r = await client.post(
        "/api/auth/login", json={"username": user.username, "password": user.password}
    )
    assert user.password not in r.text
    assert "password" not in r.json()["user"]
    r = await client.get("/api/users/me", headers=user.headers)
    assert user.password not in r.text and "password" not in r.text


def test_tokens_issued_in_the_same_instant_differ() -> None:
    codec = TokenCodec("s" * 32, 60)
    who = Principal(uuid.uuid4(), "alice", "alice@example.com", Role.USER)
    now = datetime.now(UTC)
    first, second = codec.issue(who, now), codec.issue(who, now)
    assert first != second
    assert codec.verify(first) == codec.verify(second)
    assert codec.verify(first).user_id == who.user_id


def test_a_verified_principal_knows_when_its_token_expires() -> None:
    codec = TokenCodec("s" * 32, 600)
    who = Principal(uuid.uuid4(), "alice", "alice@example.com", Role.USER)
    issued = datetime.now(UTC).replace(microsecond=0)
    principal = codec.verify(codec.issue(who, issued))
    assert principal.expires_at == issued + timedelta(seconds=600)
    assert principal.seconds_left(issued) == 600
    assert principal.seconds_left(issued + timedelta(hours=1)) == 0
    assert who.seconds_left() is None


def test_long_lived_sessions_renew_with_a_margin() -> None:
    assert renew_after(900) == 840  # a minute early for the usual 15-minute token
    assert renew_after(10) == 8  # a fifth of a short life
    assert renew_after(0) == 0
