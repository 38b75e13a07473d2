"""A headless Chromium page, driven by Playwright for Python with the system's browser.

    with serve(site) as url, open_page(f"{url}/post/index.html") as (page, console):
        page.evaluate("document.title")
        console  # every console message, page error and failed request, as "type: text"

Quarto's pages load their scripts as ES modules, which browsers refuse over file://, so a
rendered site is served over HTTP on 127.0.0.1 (`serve`) rather than opened as a file.

No browser is downloaded (never `playwright install`): Debian's `chromium` is used. Where it or
the playwright package is missing, the calling test skips with a one-line reason, or fails
when LOWRANK_REQUIRE_RENDER=1.
"""

import functools
import os
import shutil
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import skip_or_fail

# quiet, offline and reproducible: no GPU, no sandbox (CI containers run as root), no
# background traffic to Google's services
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str | None:
    """Debian's chromium, or $CHROMIUM when set."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # no request log on the test's stderr
        pass


@contextmanager
def serve(directory):
    """Serve `directory` over HTTP on a free port of 127.0.0.1; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def open_page(
    target,
    width: int = 1280,
    height: int = 800,
    timeout_ms: int = 60_000,
    color_scheme: str = "light",
):
    """Yield (page, console) with `target` (a path or URL) loaded in a fresh browser whose
    system setting is `color_scheme` ("light" or "dark")."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install playwright; the dev extra has it)")
    executable = chromium_executable()
    if executable is None:
        skip_or_fail("chromium is not installed (apt-get install chromium; .ci/run does it)")
    url = (
        Path(target).resolve().as_uri()
        if not str(target).startswith(("http:", "https:", "file:"))
        else str(target)
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=FLAGS, headless=True)
        try:
            page = browser.new_page(
                viewport={"width": width, "height": height}, color_scheme=color_scheme
            )
            page.set_default_timeout(timeout_ms)
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.on(
                "requestfailed", lambda r: console.append(f"requestfailed: {r.url} ({r.failure})")
            )
            page.on(
                "response",
                lambda r: r.status >= 400 and console.append(f"http {r.status}: {r.url}"),
            )
            page.goto(url, wait_until="load")
            yield page, console
        finally:
            browser.close()
