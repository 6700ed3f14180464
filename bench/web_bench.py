"""Web app: time until a cold browser can use the first page, against a bare page.

The app: a fresh Chromium context opens ``/#/search`` on ``mangahub serve api`` (SQLite,
bundled catalog) and waits until the first result tiles are on screen (shell, modules,
styles, session check, genre list and the first search all done). The baseline, in the
same run and the same browser: a bare static page from Python's ``http.server`` that
loads one module which fetches a JSON list and draws 24 tiles, the least a page with
live results can do. Also prints the gzipped size of the app's JS + CSS.

    .venv/bin/python bench/web_bench.py [--quick] [--runs N]

Needs Debian's chromium and Playwright (scripts/install-browser.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.async_api import Browser, async_playwright

from common import free_port, logged, ratio, server_process

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "src" / "mangahub" / "web" / "static"
CHROMIUM = os.environ.get("MANGAHUB_CHROMIUM", "/usr/bin/chromium")

BARE_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>bare</title>
<script type="module" src="/bare.js"></script></head><body><ul id="r"></ul></body></html>"""
BARE_JS = """const r = await fetch("/list.json"); const items = await r.json();
const ul = document.getElementById("r");
for (const t of items) {
  const li = document.createElement("li"); li.textContent = t; ul.append(li);
}
"""


def asset_size() -> tuple[int, int]:
    files = [*STATIC.glob("js/**/*.js"), *STATIC.glob("css/*.css")]
    raw = b"".join(f.read_bytes() for f in sorted(files))
    return len(raw), len(gzip.compress(raw, 9))


async def time_to(browser: Browser, url: str, selector: str, runs: int) -> list[float]:
    times: list[float] = []
    for _ in range(runs):
        context = await browser.new_context()  # cold: no cache, no cookies
        page = await context.new_page()
        start = time.perf_counter()
        await page.goto(url)
        await page.wait_for_selector(selector, state="visible", timeout=30_000)
        times.append(time.perf_counter() - start)
        await context.close()
    return times


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"


async def measure(app_url: str, bare_url: str, runs: int) -> tuple[list[float], list[float]]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            await time_to(browser, app_url + "/#/search", "ul.grid li", 1)  # warm the server
            app = await time_to(browser, app_url + "/#/search", "ul.grid li", runs)
            bare = await time_to(browser, bare_url + "/", "#r li", runs)
        finally:
            await browser.close()
    return app, bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 runs")
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp:
        work = Path(tmp)
        bare_dir = work / "bare"
        bare_dir.mkdir()
        (bare_dir / "index.html").write_text(BARE_HTML)
        (bare_dir / "bare.js").write_text(BARE_JS)
        (bare_dir / "list.json").write_text(json.dumps([f"Series {i}" for i in range(24)]))
        http_port, bare_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MANGAHUB_")}
        env.update(
            MANGAHUB_HOST="127.0.0.1",
            MANGAHUB_HTTP_PORT=str(http_port),
            MANGAHUB_DATA_DIR=str(work / "data"),
            MANGAHUB_ADMIN_PASSWORD="bench-admin-password",
            MANGAHUB_MANGADEX_URL="",
            MANGAHUB_ANILIST_URL="",
            MANGAHUB_LOG_LEVEL="WARNING",
        )
        app_log, bare_log = work / "app.log", work / "bare.log"
        with (
            server_process(
                "mangahub",
                [sys.executable, "-m", "mangahub", "serve", "api"],
                app_log,
                logged(app_log),
                env=env,
            ),
            server_process(
                "bare",
                [sys.executable, "-m", "http.server", str(bare_port), "--bind", "127.0.0.1"],
                bare_log,
                logged(bare_log, b"Serving HTTP"),
                cwd=bare_dir,
                env={**env, "PYTHONUNBUFFERED": "1"},
            ),
        ):
            app, bare = asyncio.run(
                measure(f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{bare_port}", runs)
            )
    raw, packed = asset_size()
    print(f"first page usable, cold browser context, {runs} runs each")
    print(f"  mangahub /#/search   {summary(app)}")
    print(f"  bare static page     {summary(bare)}")
    print(f"  ratio (median)       {ratio(statistics.median(app), statistics.median(bare))}")
    print(f"JS + CSS: {raw / 1024:.1f} KiB, {packed / 1024:.1f} KiB gzipped (budget 150 KiB)")


if __name__ == "__main__":
    main()
