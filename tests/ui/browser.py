"""Real-browser test helpers: Debian's Chromium driven by Playwright, kept on loopback.

- `open_browser()`: Playwright's driver and /usr/bin/chromium (headless, the flags below), closed
  even on failure, then a /proc scan that nothing they started is left running.
- `PageChecks` + `watch_context()`: every request a page makes goes through a network guard that
  aborts (and records) anything not bound for a 127.x.y.z address; console errors and uncaught
  exceptions are recorded too. A test fails when either list is not empty, unless it said so.
- `screenshot(page, name)`: to a temporary folder, or to docs/img/<name>.png with
  DISCO_UI_SCREENSHOTS=1 (so a CI run never writes into the tree).

The fixtures over these live in tests/ui/conftest.py (docs/testing.md).
(A module named `browser`, not conftest: see the note at the top of tests/sm_fixtures.py.)
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
from playwright.sync_api import (Browser, BrowserContext, ConsoleMessage, Locator, Page, Route, WebError,
                                 WebSocketRoute)
from playwright.sync_api import sync_playwright

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (.ci/run installs it); never a download
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run")
# Beneath the pages' guard, for what the browser fetches on its own (no page, so no route sees
# it): every proxied request goes to a port nobody answers (Chromium never proxies loopback
# addresses), and no host name resolves.
CONTAINMENT_FLAGS = ("--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.*")
# Every process the browser starts inherits this variable (value: one session's id); the scan
# after the session finds them by it, wherever they were reparented.
MARK_VAR = "DISCO_UI_BROWSER"
VIEWPORT = {"width": 1280, "height": 800}
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS_ENV = "DISCO_UI_SCREENSHOTS"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_screenshot_dir: Path | None = None
_marks: dict[int, str] = {}  # id(browser) -> its session's mark, while it is open


def is_loopback_url(url: str) -> bool:
    """True for http(s)/ws(s) URLs whose host is a 127.x.y.z address (not a name: a name is
    resolved by someone else, and `localhost` is not needed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        return False
    try:
        return ipaddress.ip_address(parts.hostname) in _LOOPBACK
    except ValueError:
        return False


def require_chromium() -> None:
    """Fail (never skip): CI installs the browser, so a missing one is a broken machine."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's package (`apt-get install -y "
                    "--no-install-recommends chromium`, as .ci/run does); the browser tests never "
                    "download a browser", pytrace=False)


def marked_processes(mark: str) -> list[psutil.Process]:
    """Live processes whose environment carries MARK_VAR=mark (zombies are already dead)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK_VAR) == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def browser_processes(browser: Browser) -> list[psutil.Process]:
    """The processes of an open browser (main, renderers, utilities), found by their mark."""
    return marked_processes(_marks[id(browser)])


@contextmanager
def open_browser() -> Iterator[Browser]:
    """Playwright's driver and a headless Chromium; afterwards, proof that both are gone."""
    require_chromium()
    mark = uuid.uuid4().hex
    before = {child.pid for child in psutil.Process().children()}
    playwright = sync_playwright().start()
    drivers = [child for child in psutil.Process().children() if child.pid not in before]
    try:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_FLAGS, *CONTAINMENT_FLAGS],
            env={**os.environ, MARK_VAR: mark}, timeout=60_000)
        _marks[id(browser)] = mark
        try:
            yield browser
        finally:
            del _marks[id(browser)]
            browser.close()
    finally:
        playwright.stop()
        _assert_gone(mark, drivers)


def _assert_gone(mark: str, drivers: list[psutil.Process]) -> None:
    deadline = time.monotonic() + 10
    left = marked_processes(mark) + [d for d in drivers if _alive(d)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = marked_processes(mark) + [d for d in drivers if _alive(d)]
    if left:
        described = [f"{proc.pid} {proc.name()}" for proc in left if _alive(proc)]
        for proc in left:  # ours (marked, or the driver we started): stop them, by pid
            try:
                proc.kill()
            except psutil.Error:
                pass
        raise AssertionError(f"the browser left processes running after it closed: {described}")


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class PageChecks:
    """What a test's pages did that fails the test: requests the guard stopped (URLs) and
    console errors or uncaught exceptions (texts), less those the test said it expects."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self._expected: list[re.Pattern[str]] = []

    def expect_console_error(self, pattern: str) -> None:
        """Console errors matching this regular expression do not fail the test."""
        self._expected.append(re.compile(pattern))

    def take_blocked(self) -> list[str]:
        """The blocked URLs so far, forgiven (for a test that makes a page reach out on purpose)."""
        taken, self.blocked = self.blocked, []
        return taken

    def problems(self) -> list[str]:
        errors = [e for e in self.console_errors if not any(p.search(e) for p in self._expected)]
        return [f"request outside loopback, aborted: {url}" for url in self.blocked] + \
               [f"console error: {text}" for text in errors]

    def assert_clean(self) -> None:
        """Raise if anything failed; what was reported once is not reported again."""
        problems = self.problems()
        self.blocked, self.console_errors = [], []
        if problems:
            raise AssertionError("the browser saw:\n  " + "\n  ".join(problems))

    def _route(self, route: Route) -> None:
        if is_loopback_url(route.request.url):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    def _websocket(self, ws: WebSocketRoute) -> None:
        if is_loopback_url(ws.url):
            ws.connect_to_server()  # messages pass both ways unchanged
        else:
            self.blocked.append(ws.url)
            ws.close(code=1008, reason="outside loopback")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def _web_error(self, error: WebError) -> None:
        self.console_errors.append(f"uncaught: {error.error}")


def watch_context(context: BrowserContext, checks: PageChecks) -> None:
    """Put the network guard and the error collectors on every page of the context (pop-ups
    and workers' requests included)."""
    context.route("**/*", checks._route)
    context.route_web_socket(re.compile(".*"), checks._websocket)
    context.on("console", checks._console)
    context.on("weberror", checks._web_error)


def set_screenshot_dir(folder: Path) -> None:
    global _screenshot_dir
    _screenshot_dir = folder


def screenshot(target: Page | Locator, name: str, *, full_page: bool = False) -> Path:
    """Save what the page (or one element of it) shows as <name>.png: to docs/img/ when
    DISCO_UI_SCREENSHOTS=1 (to refresh the documentation's images), else to the session's
    temporary folder."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"screenshot name {name!r}: lower-case letters, digits and '-' only")
    if os.environ.get(SCREENSHOTS_ENV) == "1":
        folder = REPO / "docs" / "img"
    else:
        folder = _screenshot_dir or Path(tempfile.gettempdir()) / "disco-ui-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    if isinstance(target, Page):
        target.screenshot(path=str(path), full_page=full_page)
    else:
        target.screenshot(path=str(path))
    return path
