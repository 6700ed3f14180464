"""Browser sessions: the refresh token lives in an HttpOnly, SameSite=Strict cookie
scoped to ``/api/auth``, the access token only in the page's memory.

- ``POST /api/auth/session`` ``{username, password}``: log in; sets the cookies and
  answers ``{access_token, token_type, expires_in, user}`` (no refresh token in the body).
- ``POST /api/auth/session/refresh``: a new access token from the cookie (rotated).
- ``POST /api/auth/session/logout``: revoke the cookie's token family, clear the cookies.

The two cookie-authenticated routes are guarded by a double-submit token: the
``mh_csrf`` cookie (readable by the page's script, so same-origin only) must be echoed
in the ``X-CSRF-Token`` header. Other clients keep using the JSON routes next door.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Cookie, Header, Request, Response
from pydantic import BaseModel

from mangahub.domain.errors import Forbidden, Unauthorized
from mangahub.domain.schemas import LoginIn, TokenPair, UserPublic
from mangahub.http.deps import RuntimeDep

router = APIRouter(tags=["browser session"])

REFRESH_COOKIE = "mh_refresh"
CSRF_COOKIE = "mh_csrf"
CSRF_HEADER = "X-CSRF-Token"
REFRESH_PATH = "/api/auth"


class SessionOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserPublic


class LogoutOut(BaseModel):
    status: str = "ok"


@router.post("", responses={401: {"description": "Invalid credentials"}})
async def open_session(
    body: LoginIn, request: Request, response: Response, runtime: RuntimeDep
) -> SessionOut:
    address = request.client.host if request.client else "unknown"
    pair = await runtime.auth.login(body, address)
    return _answer(pair, request, response, runtime.settings.refresh_token_ttl_seconds)


@router.post("/refresh", responses={401: {"description": "No valid session"}})
async def refresh_session(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    refresh: Annotated[str | None, Cookie(alias=REFRESH_COOKIE)] = None,
    csrf_cookie: Annotated[str | None, Cookie(alias=CSRF_COOKIE)] = None,
    csrf_header: Annotated[str | None, Header(alias=CSRF_HEADER)] = None,
) -> SessionOut:
    _check_csrf(csrf_cookie, csrf_header)
    if not refresh:
        raise Unauthorized("no session")
    pair = await runtime.auth.refresh(refresh)
    return _answer(pair, request, response, runtime.settings.refresh_token_ttl_seconds)


@router.post("/logout")
async def close_session(
    response: Response,
    runtime: RuntimeDep,
    refresh: Annotated[str | None, Cookie(alias=REFRESH_COOKIE)] = None,
    csrf_cookie: Annotated[str | None, Cookie(alias=CSRF_COOKIE)] = None,
    csrf_header: Annotated[str | None, Header(alias=CSRF_HEADER)] = None,
) -> LogoutOut:
    _check_csrf(csrf_cookie, csrf_header)
    if refresh:
        await runtime.auth.revoke(refresh)
    _clear(response)
    return LogoutOut()


def _check_csrf(cookie: str | None, header: str | None) -> None:
    if not cookie or not header or not hmac.compare_digest(cookie, header):
        raise Forbidden("missing or wrong CSRF token")


def _answer(pair: TokenPair, request: Request, response: Response, ttl: int) -> SessionOut:
    secure = request.url.scheme == "https"
    response.set_cookie(
        REFRESH_COOKIE,
        pair.refresh_token,
        max_age=ttl,
        path=REFRESH_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    response.set_cookie(
        CSRF_COOKIE,
        secrets.token_urlsafe(24),
        max_age=ttl,
        path="/",
        httponly=False,  # the page reads it to echo it in the header
        samesite="strict",
        secure=secure,
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(access_token=pair.access_token, expires_in=pair.expires_in, user=pair.user)


def _clear(response: Response) -> None:
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_PATH, httponly=True, samesite="strict")
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="strict")
