"""Fixtures of the browser tests (the helpers live in browser.py; docs/testing.md):

- `chromium_browser` (session): one headless /usr/bin/chromium for the whole run, closed and
  checked gone at the end.
- `page_checks` (per test): the network guard's and console's findings (`expect_console_error`,
  `take_blocked`); anything left in them fails the test.
- `page` (per test): a fresh context (no cookies or storage shared between tests) and its page,
  guarded and watched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser import VIEWPORT, PageChecks, open_browser, set_screenshot_dir, watch_context
from playwright.sync_api import Browser, Page


@pytest.fixture(scope="session")
def chromium_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    set_screenshot_dir(tmp_path_factory.mktemp("ui-screenshots"))
    with open_browser() as browser:
        yield browser


@pytest.fixture()
def page_checks() -> PageChecks:
    return PageChecks()


@pytest.fixture()
def page(chromium_browser: Browser, page_checks: PageChecks) -> Iterator[Page]:
    context = chromium_browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        watch_context(context, page_checks)
        yield context.new_page()
    finally:
        context.close()  # delivers the events still queued, so the check below sees them
    page_checks.assert_clean()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test whose pages reached outside loopback or logged an error fails as a test (not
    only at its fixture's teardown)."""
    result = yield
    checks = getattr(item, "funcargs", {}).get("page_checks")
    page = getattr(item, "funcargs", {}).get("page")
    if isinstance(checks, PageChecks):
        if isinstance(page, Page) and not page.is_closed():
            page.evaluate("0")  # a round trip: events the browser sent meanwhile are handled
        checks.assert_clean()
    return result
