"""The web app in a real Chromium: a new reader's journey, live progress from another
tab and from the TCP door, chat between readers, live notifications, the pages at
375 px and 1280 px (screenshots, axe), /docs offline, and the CSP holding."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from mangahub.app import Runtime
from mangahub.tcp.client import ProgressClient
from tests.browser.conftest import (
    AXE,
    PASSWORD,
    OpenReader,
    Reader,
    find_series,
    register,
    screenshot,
    sign_in,
)
from tests.conftest import ADMIN_PASSWORD, Backend
from tests.live_server import LiveServer, free_port, live_server

SERIES = "Vagabond"
TYPO = "Vagabnod"
INJECTED = '<script>window.__pwned = 1</script><img src="/x" onerror="window.__pwned = 2">'
LIVE = 5_000  # ms a live update may take here (2 shared cores); it is usually ~100 ms


async def open_series(page: Page, manga_id: int) -> None:
    await page.goto(f"/#/series/{manga_id}")
    await expect(page.locator("#chapter")).to_be_visible()


async def test_the_journey_of_a_new_reader(open_reader: OpenReader) -> None:
    reader = await open_reader(signed_in=False)
    page = reader.page

    # Sign up: the page signs in right away and lands on the (empty) list.
    await page.goto("/#/signup")
    await page.wait_for_selector("body[data-ready]")
    await page.get_by_label("Username").fill(reader.username)
    await page.get_by_label("Email").fill(reader.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url("**/#/list")
    await expect(page.get_by_role("link", name=reader.username)).to_be_visible()

    # Search: results come while typing, filters narrow them.
    await page.get_by_role("link", name="Search", exact=True).click()
    await page.get_by_label("Search", exact=True).fill(TYPO)  # forgiven
    results = page.locator(f'ul.grid[data-query="{TYPO}"]')
    await expect(results).to_be_attached()
    result = results.get_by_role("link", name=re.compile(f"^{SERIES}"))
    await expect(result.first).to_be_visible()
    await page.get_by_label("Status").select_option("hiatus")
    await expect(result.first).to_be_visible()
    await result.first.click()

    # The series page: add it, +1 three times, score it, comment, chat.
    await expect(page.get_by_role("heading", name=SERIES, level=1)).to_be_visible()
    await page.get_by_label("List status").select_option("reading")
    await expect(page.locator("#remove")).to_be_visible()
    plus = page.get_by_role("button", name="+1 chapter")
    for n in (1, 2, 3):
        await plus.click()
        await expect(page.locator("#chapter")).to_have_text(re.compile(rf"^Chapter {n}\b"))
    await page.get_by_label("Chapter", exact=True).fill("3.5")
    await page.get_by_role("button", name="Set", exact=True).click()
    await expect(page.locator("#chapter")).to_have_text(re.compile(r"^Chapter 3\.5\b"))
    await page.get_by_label("My score").select_option("8")
    await expect(page.get_by_text("Scored 8/10")).to_be_visible()

    await page.get_by_label("My notes (only you see them)").fill("reread the duel " + INJECTED)
    await page.get_by_role("button", name="Save notes").click()
    await expect(page.get_by_text("Notes saved")).to_be_visible()

    await page.get_by_label("Add a comment").fill(INJECTED)
    await page.get_by_role("button", name="Post comment").click()
    await expect(page.locator("#comments .comment-body").first).to_have_text(INJECTED)

    await page.get_by_label("Message", exact=True).fill("hello from the journey")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#chat-log")).to_contain_text("hello from the journey")
    assert await page.evaluate("window.__pwned") is None

    await page.reload()  # the entry as stored: notes back as text
    await expect(page.locator("#entry-notes")).to_have_value("reread the duel " + INJECTED)
    assert await page.evaluate("window.__pwned") is None

    # The list shows the entry with its progress; +1 from there.
    await page.get_by_role("link", name="My list").click()
    row = page.locator("li.entry", has_text=SERIES)
    await expect(row.locator(".chapter")).to_have_text(re.compile(r"^3\.5\b"))
    await row.get_by_role("button", name=f"+1 chapter of {SERIES}").click()
    await expect(row.locator(".chapter")).to_have_text(re.compile(r"^4\.5\b"))

    await import_and_export(page)

    # Sign out: the session cookie is gone, a reload stays signed out.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    await page.reload()
    await page.wait_for_selector("body[data-ready]")
    await expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    cookies = {c["name"] for c in await reader.context.cookies()}
    assert "mh_refresh" not in cookies
    assert await page.evaluate("JSON.stringify(localStorage)") == "{}"


async def import_and_export(page: Page) -> None:
    """Import a one-series MAL export through the page, then download the MAL export."""
    await page.get_by_role("link", name="Import / export").click()
    mal = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<myanimelist><myinfo><user_export_type>2'
        "</user_export_type></myinfo><manga><series_title><![CDATA[Vagabond]]></series_title>"
        "<my_read_chapters>12</my_read_chapters><my_status>Reading</my_status><my_score>9"
        "</my_score></manga></myanimelist>\n"
    )
    await page.get_by_label("List file").set_input_files(
        files=[{"name": "mal.xml", "mimeType": "application/xml", "buffer": mal.encode()}]
    )
    await page.get_by_role("button", name="Import", exact=True).click()
    report = page.locator("#import-report")
    await expect(report).to_contain_text("Import report")
    # The series is already listed: the file's entry updates it rather than adding one.
    fact = report.locator("dl.facts > div")
    await expect(fact.filter(has_text="Updated").locator("dd")).to_have_text("1")
    await expect(fact.filter(has_text="Skipped").locator("dd")).to_have_text("0")

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="MyAnimeList XML").click()
    download = await download_info.value
    path = await download.path()
    assert "Vagabond" in path.read_text()


async def test_two_tabs_of_one_reader_see_each_others_progress(
    open_reader: OpenReader,
) -> None:
    laptop = await open_reader()
    phone = await open_reader(width=375, username=laptop.username, signed_in=False)
    await sign_in(phone)
    manga_id = await find_series(laptop.page, SERIES)
    await open_series(laptop.page, manga_id)
    await laptop.page.get_by_label("List status").select_option("reading")
    await expect(laptop.page.locator("#remove")).to_be_visible()
    # The phone's list was open before the add: the new entry appears on it live.
    row = phone.page.locator("li.entry", has_text=SERIES)
    await expect(row.locator(".chapter")).to_have_text(re.compile(r"^0\b"), timeout=LIVE)
    # Progress written on the laptop moves the phone's list, then its series page.
    await laptop.page.get_by_role("button", name="+1 chapter").click()
    await expect(laptop.page.locator("#chapter")).to_have_text(re.compile(r"^Chapter 1\b"))
    await expect(row.locator(".chapter")).to_have_text(re.compile(r"^1\b"), timeout=LIVE)
    await open_series(phone.page, manga_id)
    await laptop.page.get_by_role("button", name="+1 chapter").click()
    await expect(phone.page.locator("#chapter")).to_have_text(
        re.compile(r"^Chapter 2\b"), timeout=LIVE
    )
    await phone.page.get_by_role("button", name="+1 chapter").click()
    await expect(laptop.page.locator("#chapter")).to_have_text(
        re.compile(r"^Chapter 3\b"), timeout=LIVE
    )


async def test_progress_from_the_tcp_door_reaches_the_open_page(
    open_reader: OpenReader, web: LiveServer
) -> None:
    reader = await open_reader()
    manga_id = await find_series(reader.page, SERIES)
    await open_series(reader.page, manga_id)
    host, port = web.addresses["tcp"]
    async with ProgressClient(host, port, reader.access_token, device="e-reader") as tcp:
        await tcp.update(manga_id, 42.5)
    await expect(reader.page.locator("#chapter")).to_have_text(
        re.compile(r"^Chapter 42\.5\b"), timeout=LIVE
    )


async def test_two_readers_chat_and_see_each_other(open_reader: OpenReader) -> None:
    alice = await open_reader()
    bob = await open_reader(width=375)
    manga_id = await find_series(alice.page, SERIES)
    await open_series(alice.page, manga_id)
    await open_series(bob.page, manga_id)
    await expect(alice.page.locator("#presence")).to_contain_text(bob.username, timeout=LIVE)

    await alice.page.get_by_label("Message", exact=True).fill("anyone read chapter 300?")
    await alice.page.get_by_role("button", name="Send").click()
    await expect(bob.page.locator("#chat-log")).to_contain_text(
        "anyone read chapter 300?", timeout=LIVE
    )
    await bob.page.get_by_label("Message", exact=True).fill(INJECTED)
    await bob.page.get_by_role("button", name="Send").click()
    line = alice.page.locator("#chat-log li", has_text="window.__pwned")
    await expect(line).to_contain_text(INJECTED, timeout=LIVE)
    assert await alice.page.evaluate("window.__pwned") is None
    await screenshot(bob.page, "chat")

    # A reader who comes later gets the history.
    carol = await open_reader()
    await open_series(carol.page, manga_id)
    await expect(carol.page.locator("#chat-log")).to_contain_text("anyone read chapter 300?")


async def test_a_notification_arrives_live(
    open_reader: OpenReader, web: LiveServer, runtime: Runtime
) -> None:
    reader = await open_reader()
    page = reader.page
    manga_id = await find_series(page, SERIES)
    origin = web.http_url
    async with httpx.AsyncClient(base_url=origin, timeout=10) as api:
        r = await api.post(
            "/api/library",
            json={"manga_id": manga_id, "status": "reading"},
            headers={"Authorization": f"Bearer {reader.access_token}"},
        )
        assert r.status_code == 201, r.text
    await page.goto("/#/notifications")
    await expect(page.get_by_text("No notifications yet.")).to_be_visible()

    assert runtime.settings.internal_token is not None
    host, port = web.addresses["trigger"]
    async with httpx.AsyncClient(
        base_url=f"http://{host}:{port}",
        headers={"X-Internal-Token": runtime.settings.internal_token.get_secret_value()},
        timeout=10,
    ) as trigger:
        r = await trigger.post(
            "/notify/new-chapter",
            json={"manga_id": manga_id, "title": SERIES, "chapter": 328, "old_chapter": 327},
        )
        assert r.status_code == 202, r.text

    item = page.locator("#notifications li", has_text="Chapter 328")
    await expect(item).to_be_visible(timeout=LIVE)
    await expect(page.locator("#unread")).to_have_text(re.compile(r"^1\b"), timeout=LIVE)
    await item.get_by_role("button", name=re.compile("^Mark read")).click()
    await expect(page.locator("#unread")).to_be_hidden()


async def _axe(page: Page) -> list[str]:
    """Serious and critical axe violations of the current page."""
    assert AXE.exists(), f"{AXE} missing: run scripts/install-browser.sh (npm ci)"
    await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', ')))"
    )
    assert isinstance(result, list)
    return [str(v) for v in result]


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (375, "dark")])
async def test_the_main_pages_at_phone_and_desktop_widths(
    open_reader: OpenReader, width: int, scheme: str
) -> None:
    reader = await open_reader(width=width, scheme=scheme)
    page = reader.page
    manga_id = await find_series(page, SERIES)
    await open_series(page, manga_id)
    await page.get_by_label("List status").select_option("reading")
    await expect(page.locator("#remove")).to_be_visible()
    await page.get_by_role("button", name="+1 chapter").click()
    await expect(page.locator("#chapter")).to_have_text(re.compile(r"^Chapter 1\b"))
    pages = {
        "search": ("/#/search", "#main .grid li"),
        "series": (f"/#/series/{manga_id}", "#chapter"),
        "list": ("/#/list", "li.entry"),
        "notifications": ("/#/notifications", "#notifications"),
        "import-export": ("/#/import-export", "#import-file"),
        "profile": ("/#/profile", "dl.facts"),
    }
    violations: dict[str, list[str]] = {}
    for name, (path, ready) in pages.items():
        await page.goto(path)
        await expect(page.locator(ready).first).to_be_visible()
        await asyncio.sleep(0.2)  # let toasts and lazy lists settle before the picture
        # Nothing sticks out sideways at this width.
        overflow = await page.evaluate("document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0, f"{name} is {overflow}px too wide at {width}px"
        await screenshot(page, f"{name}-{scheme}")
        found = await _axe(page)
        if found:
            violations[name] = found
    assert violations == {}


async def test_the_sign_in_page_and_admin_pages(open_reader: OpenReader) -> None:
    visitor = await open_reader(signed_in=False, width=375)
    await visitor.page.goto("/#/signin")
    await visitor.page.wait_for_selector("body[data-ready]")
    await screenshot(visitor.page, "signin")
    assert await _axe(visitor.page) == []
    # A visitor reads a series page: details and chapters, with sign-in prompts for the rest.
    await visitor.page.goto(f"/#/series/{await find_series(visitor.page, SERIES)}")
    await expect(visitor.page.get_by_role("heading", name=SERIES, exact=True)).to_be_visible()
    await expect(visitor.page.get_by_text("to read and post comments")).to_be_visible()
    await expect(visitor.page.get_by_text("to track this series")).to_be_visible()

    admin = await open_reader(signed_in=False, username="admin")
    await sign_in(admin, ADMIN_PASSWORD)
    page = admin.page
    await page.get_by_role("link", name="Admin", exact=True).click()
    await expect(page.get_by_role("heading", name="Sync jobs")).to_be_visible()
    await expect(page.locator("tbody tr").first).to_be_visible()
    manga_id = await find_series(page, SERIES)
    await page.get_by_label("Series id").fill(str(manga_id))
    await page.get_by_role("button", name="Load").click()
    await page.get_by_label("Year").fill("1998")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Saved")).to_be_visible()
    await screenshot(page, "admin")
    assert await _axe(page) == []
    await open_series(page, manga_id)
    await expect(page.locator("dl.facts")).to_contain_text("1998")


async def test_docs_work_offline(open_reader: OpenReader) -> None:
    reader = await open_reader(signed_in=False)
    await reader.page.goto("/docs")
    await expect(reader.page.get_by_text("/api/auth/register").first).to_be_visible()
    await screenshot(reader.page, "docs")


@pytest.mark.usefixtures("runtime")  # the database is migrated and the catalog loaded
async def test_the_live_feed_reconnects_by_itself(browser: Browser, backend: Backend) -> None:
    """The server restarts under an open page: the page says so, reconnects, and live
    progress flows again."""
    port = free_port()
    env = backend.process_env(MANGAHUB_HTTP_PORT=str(port))
    username = f"reader_{uuid.uuid4().hex[:8]}"
    context = await browser.new_context(base_url=f"http://127.0.0.1:{port}")
    try:
        with live_server(env) as first:
            await register(first.http_url, username)
            reader = Reader(username, f"{username}@example.com", context, await context.new_page())
            await sign_in(reader)
            manga_id = await find_series(reader.page, SERIES)
            await open_series(reader.page, manga_id)
        status = reader.page.locator("#live-status")
        await expect(status).to_have_text("Reconnecting…", timeout=LIVE)
        with live_server(env) as second:
            await expect(status).to_have_text("", timeout=20_000)
            host, tcp_port = second.addresses["tcp"]
            async with ProgressClient(
                host, tcp_port, reader.access_token, device="e-reader"
            ) as tcp:
                await tcp.update(manga_id, 9)
            await expect(reader.page.locator("#chapter")).to_have_text(
                re.compile(r"^Chapter 9\b"), timeout=LIVE
            )
    finally:
        await context.close()
