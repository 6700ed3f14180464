"""The web app's server side: pages and /docs served from this origin with a strict
CSP, browser sessions in cookies guarded by a CSRF token, and the admin sync view."""

from __future__ import annotations

import re

import httpx

from mangahub.web.headers import PAGE_POLICY
from tests.conftest import MakeUser, UserSession

PASSWORD = "correct-horse-battery"


async def test_the_app_shell_and_its_assets_are_served_with_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    policy = r.headers["content-security-policy"]
    assert policy == PAGE_POLICY
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert r.headers["x-content-type-options"] == "nosniff"
    # Only same-origin assets, and no inline script.
    for src in re.findall(r'(?:src|href)="([^"]+)"', r.text):
        assert src.startswith(("/", "#")), src
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text) is None
    js = await client.get("/static/js/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    # The JSON API keeps its own headers.
    assert "content-security-policy" not in (await client.get("/healthz")).headers


async def test_docs_load_swagger_from_this_origin(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets)
    for asset in assets:
        assert (await client.get(asset)).status_code == 200, asset
    assert "script-src 'self';" in r.headers["content-security-policy"]
    assert (await client.get("/openapi.json")).status_code == 200


async def _session(client: httpx.AsyncClient, user: UserSession) -> httpx.Response:
    return await client.post(
        "/api/auth/session", json={"username": user.username, "password": user.password}
    )


async def test_a_browser_session_keeps_the_refresh_token_in_an_httponly_cookie(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("web")
    r = await _session(client, user)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "refresh_token" not in body and body["user"]["username"] == user.username
    cookies = r.headers.get_list("set-cookie")
    refresh = next(c for c in cookies if c.startswith("mh_refresh="))
    assert "HttpOnly" in refresh and "SameSite=strict" in refresh and "Path=/api/auth" in refresh
    csrf_cookie = next(c for c in cookies if c.startswith("mh_csrf="))
    assert "HttpOnly" not in csrf_cookie
    me = await client.get(
        "/api/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json()["username"] == user.username

    # Without the double-submit header the cookie is useless to another site.
    assert (await client.post("/api/auth/session/refresh")).status_code == 403
    wrong = await client.post("/api/auth/session/refresh", headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    csrf = client.cookies["mh_csrf"]
    renewed = await client.post("/api/auth/session/refresh", headers={"X-CSRF-Token": csrf})
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["access_token"]

    csrf = client.cookies["mh_csrf"]
    out = await client.post("/api/auth/session/logout", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 200
    client.cookies.set("mh_csrf", csrf)  # even a page that kept the old token
    gone = await client.post("/api/auth/session/refresh", headers={"X-CSRF-Token": csrf})
    assert gone.status_code == 401


async def test_the_json_refresh_keeps_working_for_other_clients(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("cli")
    r = await client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert r.status_code == 200 and r.json()["refresh_token"]


async def test_a_wrong_password_opens_no_session(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("web")
    r = await client.post(
        "/api/auth/session", json={"username": user.username, "password": "wrong-password"}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert "set-cookie" not in r.headers


async def test_sync_jobs_state_is_for_admins(
    client: httpx.AsyncClient, make_user: MakeUser, admin: UserSession
) -> None:
    user = await make_user("web")
    assert (await client.get("/api/admin/sync", headers=user.headers)).status_code == 403
    r = await client.get("/api/admin/sync", headers=admin.headers)
    assert r.status_code == 200, r.text
    jobs = r.json()["data"]
    assert jobs and {"sync_type", "status", "last_run_at", "error"} <= set(jobs[0])
