"""Browser tests: Debian's Chromium driven by Playwright against a real ``mangahub
serve`` on ephemeral ports (sharing the session's database, bus and secrets).

Install once with ``scripts/install-browser.sh``. Select with ``-m browser``.
Every page records the requests it makes; a request to another origin fails the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

pytest.importorskip("playwright", reason="browser tests: run scripts/install-browser.sh")

from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from mangahub.app import Runtime
from tests.conftest import Backend
from tests.live_server import LiveServer, live_server

CHROMIUM = os.environ.get("MANGAHUB_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct-horse-battery"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def web(backend: Backend, runtime: Runtime) -> Iterator[LiveServer]:
    """The whole product in one process, as a reader's browser meets it."""
    with live_server(backend.process_env()) as server:
        yield server


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install-browser.sh")
    async with async_playwright() as pw:
        # Root (CI) cannot use Chromium's sandbox.
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


@dataclass
class Reader:
    username: str
    email: str
    context: BrowserContext
    page: Page
    foreign: list[str] = field(default_factory=list)
    """Requests this reader's pages made to another origin (must stay empty)."""
    problems: list[str] = field(default_factory=list)
    """Page errors and CSP violations reported in the console."""
    access_token: str = ""


OpenReader = Callable[..., Awaitable[Reader]]


@pytest.fixture
async def open_reader(browser: Browser, web: LiveServer) -> AsyncIterator[OpenReader]:
    """Open a browser context for a reader; ``signed_in`` registers the account over
    the API and signs in through the page. Every context is closed at the end and
    checked for foreign requests and page errors."""
    readers: list[Reader] = []
    origin = web.http_url

    async def open_one(
        *,
        width: int = 1280,
        signed_in: bool = True,
        username: str | None = None,
        scheme: str = "light",
    ) -> Reader:
        name = username or f"reader_{uuid.uuid4().hex[:8]}"
        context = await browser.new_context(
            base_url=origin,
            viewport={"width": width, "height": 900},
            color_scheme=scheme,  # type: ignore[arg-type]
        )
        page = await context.new_page()
        reader = Reader(name, f"{name}@example.com", context, page)
        context.on(
            "request",
            lambda request: (
                None if _same_origin(request.url, origin) else reader.foreign.append(request.url)
            ),
        )
        page.on("pageerror", lambda error: reader.problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda msg: (
                reader.problems.append(f"console: {msg.text}")
                if "Content Security Policy" in msg.text
                else None
            ),
        )
        readers.append(reader)
        if signed_in:
            await register(origin, name)
            await sign_in(reader)
        return reader

    yield open_one
    for reader in readers:
        await reader.context.close()
    for reader in readers:
        assert reader.foreign == [], f"requests to another origin: {reader.foreign}"
        assert reader.problems == [], reader.problems


def _same_origin(url: str, origin: str) -> bool:
    if url.startswith(("data:", "blob:", "about:")):
        return True
    parts, mine = urlsplit(url), urlsplit(origin)
    return (parts.hostname, parts.port) == (mine.hostname, mine.port)


async def register(origin: str, username: str) -> None:
    async with httpx.AsyncClient(base_url=origin, timeout=10) as client:
        r = await client.post(
            "/api/auth/register",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        assert r.status_code == 201, r.text


async def sign_in(reader: Reader, password: str = PASSWORD) -> None:
    page = reader.page
    await page.goto("/#/signin")
    await page.wait_for_selector("body[data-ready]")
    await page.get_by_label("Username or email").fill(reader.username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/#/list")
    reader.access_token = await api_token(reader.username, password, page)


async def api_token(username: str, password: str, page: Page) -> str:
    """A separate access token for the same reader (another device)."""
    origin = page.url.split("/#", 1)[0]
    async with httpx.AsyncClient(base_url=origin, timeout=10) as client:
        r = await client.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 0
    path = SCREENSHOTS / f"{name}-{width}.png"
    await page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 0
    return path


async def find_series(page: Page, title: str) -> int:
    """The catalog id of the series titled exactly ``title``."""
    origin = page.url.split("/#", 1)[0]
    async with httpx.AsyncClient(base_url=origin, timeout=10) as client:
        r = await client.get("/api/manga", params={"q": title, "page_size": 50})
        assert r.status_code == 200, r.text
        ids = [m["id"] for m in r.json()["data"] if m["title"] == title]
        assert ids, f"{title} not in the catalog"
        return int(ids[0])
