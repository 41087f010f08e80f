"""The browser tests' own safeguards, proved on a real Chromium: the flags reach the browser,
the network guard aborts and records anything bound outside loopback (HTTP, fetch,
WebSocket) while loopback passes, and console errors are collected."""

from __future__ import annotations

import pytest
from browser import CHROMIUM_FLAGS, CONTAINMENT_FLAGS, PageChecks, browser_processes, is_loopback_url
from playwright.sync_api import Browser, Page

from sm_fixtures import ServiceManager

OUTSIDE = "http://192.0.2.1"  # TEST-NET-1: documentation only, and never reached (the guard)


def test_chromium_is_debians_and_has_the_flags(chromium_browser: Browser) -> None:
    processes = browser_processes(chromium_browser)
    main = [p for p in processes
            if p.exe() == "/usr/lib/chromium/chromium" and not any(a.startswith("--type=") for a in p.cmdline())]
    assert len(main) == 1, processes  # Debian's binary, through the /usr/bin/chromium wrapper
    command = main[0].cmdline()
    for flag in (*CHROMIUM_FLAGS, *CONTAINMENT_FLAGS, "--headless"):
        assert any(arg == flag or arg.startswith(flag + "=") for arg in command), (flag, command)


def test_loopback_urls() -> None:
    assert is_loopback_url("http://127.0.0.1:8888/docs") and is_loopback_url("ws://127.5.6.7/x")
    for url in ("http://localhost:8888/", "https://192.0.2.1/", "http://128.0.0.1/",
                "http://[::1]/", "data:text/plain,x", "file:///etc/passwd", "http://127.0.0.1.example/"):
        assert not is_loopback_url(url), url


def test_guard_aborts_and_records_what_leaves_loopback(page: Page, page_checks: PageChecks,
                                                        sm: ServiceManager) -> None:
    page_checks.expect_console_error("ERR_BLOCKED_BY_CLIENT|WebSocket")
    page.goto(f"{sm.url}/api/v1/health")
    assert page.evaluate("fetch('/api/v1/health').then(r => r.status)") == 200  # loopback passes
    outcome = page.evaluate("""async outside => {
        const image = await new Promise(done => {
            const img = new Image(); img.onload = () => done('loaded'); img.onerror = () => done('failed');
            img.src = outside + '/pixel.png'; });
        const fetched = await fetch(outside + '/data').then(() => 'answered', () => 'failed');
        const socket = await new Promise(done => {
            const ws = new WebSocket(outside.replace('http', 'ws') + '/socket');
            ws.onopen = () => done('open'); ws.onclose = () => done('closed'); });
        return [image, fetched, socket]; }""", OUTSIDE)
    assert outcome == ["failed", "failed", "closed"]
    blocked = page_checks.take_blocked()
    assert sorted(blocked) == [f"{OUTSIDE}/data", f"{OUTSIDE}/pixel.png", "ws://192.0.2.1/socket"]


def test_console_errors_are_collected(page: Page, page_checks: PageChecks) -> None:
    page.set_content("<script>console.error('logged on purpose')</script>"
                     "<script>throw new Error('thrown on purpose')</script>")
    page.evaluate("0")  # the events reach Python on a round trip
    assert any("logged on purpose" in e for e in page_checks.console_errors)
    assert any("thrown on purpose" in e for e in page_checks.console_errors)
    with pytest.raises(AssertionError, match="thrown on purpose"):
        page_checks.assert_clean()
    assert page_checks.problems() == []  # reported once, so the test's own check passes
