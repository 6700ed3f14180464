"""Accounts and sessions: registration, login, refresh-token rotation, the first admin.

Access tokens are stateless JWTs (see ``security.tokens``). Refresh tokens are opaque
random strings stored only as their SHA-256, grouped in families: every login starts
a family, every refresh retires the presented token and adds its successor. A retired
token showing up again means two parties hold the family, so the whole family dies.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
import uuid
from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import ScalarSelect

from mangahub.cache import Cache
from mangahub.config import Settings
from mangahub.domain.enums import Role
from mangahub.domain.errors import (
    Conflict,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from mangahub.domain.schemas import LoginIn, RegisterIn, TokenPair, UserPublic
from mangahub.security.passwords import hash_password, verify_password
from mangahub.security.tokens import (
    Principal,
    TokenCodec,
    hash_refresh_token,
    new_refresh_token,
)
from mangahub.services.throttle import AddressThrottle
from mangahub.storage.database import Database
from mangahub.storage.models import RefreshToken, User
from mangahub.storage.types import utcnow

ADMIN_USERNAME = "admin"
# "localhost" is not a deliverable domain, so registration (which validates emails)
# can never claim this address before the admin exists.
ADMIN_EMAIL = "admin@localhost"
_BAD_CREDENTIALS = "invalid username or password"
_BCRYPT_MAX_BYTES = 72


class _LoginGuard:
    """Brute-force guard: failed logins per account and per client address, per window.

    The account side counts every attempt *before* the password is checked and forgets
    the count on success. So a burst of parallel guesses cannot slip past the limit
    while bcrypt is busy: each account gets at most ``max`` guesses per window, however
    they are spread over time, processes or addresses.

    The address side only counts failures (a shared NAT address logs in successfully
    all day) and locks the address once they reach the limit.
    """

    def __init__(self, cache: Cache, settings: Settings) -> None:
        self._cache = cache
        self._window = settings.login_failure_window_seconds
        self._max_account = settings.login_max_failures_per_account
        self._max_address = settings.login_max_failures_per_address

    async def admit(self, account: str, address: str) -> None:
        """Raise RateLimited when either side is locked; otherwise count the attempt."""
        locked_until = await self._cache.get(_address_lock_key(address))
        if locked_until is not None:
            raise _too_many(float(locked_until) - time.time())
        attempts, seconds_left = await self._cache.incr(_account_key(account), self._window)
        if attempts > self._max_account:
            raise _too_many(seconds_left)

    async def failed(self, address: str) -> None:
        failures, seconds_left = await self._cache.incr(_address_key(address), self._window)
        if failures >= self._max_address:
            # The lock ends with the counting window. Its value is that moment in wall
            # time, so every process computes the same Retry-After from it.
            await self._cache.set(
                _address_lock_key(address), time.time() + seconds_left, seconds_left
            )

    async def succeeded(self, account: str) -> None:
        # The owner proved the password: earlier typos no longer count against them.
        # The address count stays, so one good account cannot launder a spray.
        await self._cache.delete(_account_key(account))


def _account_key(account: str) -> str:
    return f"login:account:{account}"


def _address_key(address: str) -> str:
    return f"login:address:{_digest(address)}"


def _address_lock_key(address: str) -> str:
    return f"login:address-lock:{_digest(address)}"


def _too_many(seconds_left: float) -> RateLimited:
    return RateLimited(
        "too many failed logins, try again later", retry_after=math.ceil(seconds_left)
    )


class AuthService:
    def __init__(self, db: Database, cache: Cache, tokens: TokenCodec, settings: Settings) -> None:
        self._db = db
        self._cache = cache
        self._tokens = tokens
        self._settings = settings
        self._guard = _LoginGuard(cache, settings)
        self._registrations = AddressThrottle(
            cache,
            "register",
            settings.register_max_per_address,
            settings.register_window_seconds,
            "registrations",
        )
        self._decoy_hash: str | None = None

    # --- registration -----------------------------------------------------------

    async def register(self, data: RegisterIn, client_address: str | None = None) -> UserPublic:
        """``client_address``: the caller's, counted against the per-address budget
        (None for the operator's own tools)."""
        if client_address is not None:
            await self._registrations.admit(client_address)
        if len(data.password.encode()) > _BCRYPT_MAX_BYTES:
            # The schema counts characters; bcrypt refuses more than 72 *bytes*.
            raise ValidationFailed(
                "password is too long",
                details=[{"field": "password", "message": "at most 72 bytes as UTF-8"}],
            )
        email = data.email.lower()
        await self._reject_taken(data.username, email)
        # Hash outside any transaction: bcrypt takes ~0.1 s and SQLite has one writer.
        password_hash = await hash_password(data.password, self._settings.bcrypt_rounds)
        user = User(
            username=data.username,
            email=email,
            password_hash=password_hash,
            role=Role.USER.value,  # registration never grants a role
        )
        try:
            async with self._db.session() as s:
                s.add(user)
        except IntegrityError as exc:
            # Another request registered the same name or email since our check.
            await self._reject_taken(data.username, email)
            raise Conflict("username or email is already registered") from exc
        return UserPublic.model_validate(user)

    async def _reject_taken(self, username: str, email: str) -> None:
        """Raise Conflict naming the field when the username or email is in use."""
        async with self._db.session() as s:
            rows = await s.execute(
                select(User.username, User.email).where(
                    or_(func.lower(User.username) == username.lower(), User.email == email)
                )
            )
            for taken_username, taken_email in rows:
                if taken_username.lower() == username.lower():
                    raise Conflict("username is already taken", details=[{"field": "username"}])
                if taken_email == email:
                    raise Conflict("email is already registered", details=[{"field": "email"}])

    # --- login --------------------------------------------------------------------

    async def login(self, data: LoginIn, client_address: str) -> TokenPair:
        user = await self._find_login_user(data.username)
        # Counted per account, so guessing by username and by email share one budget;
        # unknown names get a counter too, so probing them is no faster.
        account = user.id.hex if user is not None else _digest(data.username.lower())
        # Before the password is checked: a locked account answers 429 even for the
        # right password, so the lock tells an attacker nothing (and costs no bcrypt).
        await self._guard.admit(account, client_address)
        password_hash = user.password_hash if user is not None else await self._decoy()
        if not await verify_password(data.password, password_hash) or user is None:
            await self._guard.failed(client_address)
            raise Unauthorized(_BAD_CREDENTIALS)
        await self._guard.succeeded(account)
        return await self._start_family(user)

    async def _decoy(self) -> str:
        """A hash at *our* cost factor to check unknown names against, so they take as
        long as real accounts and response time does not reveal which names exist."""
        if self._decoy_hash is None:
            self._decoy_hash = await hash_password(
                secrets.token_urlsafe(16), self._settings.bcrypt_rounds
            )
        return self._decoy_hash

    async def _find_login_user(self, identifier: str) -> User | None:
        """Users log in by email (holds '@', which usernames cannot) or by username."""
        needle = identifier.lower()
        column = User.email if "@" in identifier else func.lower(User.username)
        async with self._db.session() as s:
            # Oldest first: should a race ever store "Bob" and "bob", login stays defined.
            found = await s.scalars(
                select(User).where(column == needle).order_by(User.created_at).limit(1)
            )
            return found.first()

    # --- refresh tokens -------------------------------------------------------------

    async def refresh(self, token: str) -> TokenPair:
        token_hash = hash_refresh_token(token)
        async with self._db.session() as s:
            now = utcnow()
            # Claim and retire in one statement: of two concurrent refreshes with the
            # same token only one matches `revoked = false`.
            claimed = (
                await s.execute(
                    update(RefreshToken)
                    .where(
                        RefreshToken.token_hash == token_hash,
                        RefreshToken.revoked.is_(False),
                        RefreshToken.expires_at > now,
                    )
                    .values(revoked=True, rotated_at=now)
                    .returning(RefreshToken.user_id, RefreshToken.family_id)
                    .execution_options(synchronize_session=False)
                )
            ).one_or_none()
            if claimed is not None:
                user = await s.get(User, claimed.user_id)
                if user is not None:
                    return await self._issue(s, user, claimed.family_id)
        # Nothing was claimed (or the user is gone); the claim above was committed,
        # which is right: a token of a deleted user must not work again either.
        await self._revoke_if_reused(token_hash)
        raise Unauthorized("invalid refresh token")

    async def _revoke_if_reused(self, token_hash: str) -> None:
        """A retired token presented again: someone copied it, so end the whole family."""
        async with self._db.session() as s:
            row = (
                await s.execute(
                    select(RefreshToken.family_id, RefreshToken.revoked).where(
                        RefreshToken.token_hash == token_hash
                    )
                )
            ).one_or_none()
            if row is not None and row.revoked:
                await _revoke_family(s, row.family_id)

    async def revoke(self, token: str) -> None:
        """Log out: end the token's family. Unknown tokens are ignored on purpose."""
        async with self._db.session() as s:
            family = (
                select(RefreshToken.family_id)
                .where(RefreshToken.token_hash == hash_refresh_token(token))
                .scalar_subquery()
            )
            await _revoke_family(s, family)

    async def _start_family(self, user: User) -> TokenPair:
        async with self._db.session() as s:
            return await self._issue(s, user, uuid.uuid4())

    async def _issue(self, s: AsyncSession, user: User, family_id: uuid.UUID) -> TokenPair:
        refresh_token = new_refresh_token()
        s.add(
            RefreshToken(
                token_hash=hash_refresh_token(refresh_token),
                user_id=user.id,
                family_id=family_id,
                expires_at=utcnow() + timedelta(seconds=self._settings.refresh_token_ttl_seconds),
            )
        )
        principal = Principal(
            user_id=user.id, username=user.username, email=user.email, role=Role(user.role)
        )
        return TokenPair(
            access_token=self._tokens.issue(principal),
            refresh_token=refresh_token,
            expires_in=self._tokens.ttl_seconds,
            user=UserPublic.model_validate(user),
        )

    # --- users ------------------------------------------------------------------------

    async def get_user(self, user_id: uuid.UUID) -> UserPublic:
        async with self._db.session() as s:
            user = await s.get(User, user_id)
        if user is None:
            raise NotFound("user not found")
        return UserPublic.model_validate(user)

    async def ensure_admin(self, password: str | None) -> str | None:
        """Create user ``admin`` on first start; return its password only if generated."""
        if await self._admin_exists():
            return None
        generated = None
        if not password:
            password = generated = secrets.token_urlsafe(16)
        password_hash = await hash_password(password, self._settings.bcrypt_rounds)
        try:
            async with self._db.session() as s:
                s.add(
                    User(
                        username=ADMIN_USERNAME,
                        email=ADMIN_EMAIL,
                        password_hash=password_hash,
                        role=Role.ADMIN.value,
                    )
                )
        except IntegrityError:
            # Another process starting at the same moment created it first.
            return None
        return generated

    async def reset_password(self, username: str, password: str | None) -> str:
        """Set a user's password (an operator's recovery; generated when not given) and
        end their sessions (every refresh token revoked). Returns the new password."""
        password = password or secrets.token_urlsafe(16)
        password_hash = await hash_password(password, self._settings.bcrypt_rounds)
        async with self._db.session() as s:
            user_id = await s.scalar(
                update(User)
                .where(func.lower(User.username) == username.strip().lower())
                .values(password_hash=password_hash)
                .returning(User.id)
            )
            if user_id is None:
                raise NotFound(f"no user named {username!r}")
            await s.execute(
                update(RefreshToken)
                .where(RefreshToken.user_id == user_id, RefreshToken.revoked.is_(False))
                .values(revoked=True)
                .execution_options(synchronize_session=False)
            )
        return password

    async def admin_password_differs(self, password: str) -> bool:
        """True when user ``admin`` exists with a password other than ``password``
        (a configured ``admin_password`` only applies when the admin is created)."""
        async with self._db.session() as s:
            stored = await s.scalar(
                select(User.password_hash).where(func.lower(User.username) == ADMIN_USERNAME)
            )
        return stored is not None and not await verify_password(password, stored)

    async def _admin_exists(self) -> bool:
        async with self._db.session() as s:
            found = await s.scalar(
                select(User.id).where(func.lower(User.username) == ADMIN_USERNAME).limit(1)
            )
        return found is not None


async def _revoke_family(s: AsyncSession, family_id: uuid.UUID | ScalarSelect[uuid.UUID]) -> None:
    """Revoke every live token of a family (given directly or as a subquery)."""
    await s.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked.is_(False))
        .values(revoked=True)
        .execution_options(synchronize_session=False)
    )


def _digest(value: str) -> str:
    """A short fixed-size cache-key part for attacker-chosen text."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]
