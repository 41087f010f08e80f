"""The dashboard in a real browser (tests/ui/browser.py's Chromium, network guard and console
checks): its script makes the pages live without a reload (the cluster list, a cluster's state,
nodes and web UI lights, a process log), the keyboard reaches everything, and the pages fit a
375 px wide phone."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from browser import PageChecks, screenshot
from playwright.sync_api import Page, expect

from dashboard_steps import PHONE, mark_page, sign_in, still_same_page
from sm_fixtures import ServiceManager, wait_state


@pytest.fixture()
def api(sm: ServiceManager) -> Iterator[httpx.Client]:
    with sm.client("tenant-a") as client:
        yield client


def test_the_cluster_list_is_live(page: Page, sm: ServiceManager, api: httpx.Client) -> None:
    sign_in(page, sm)
    expect(page.locator("[data-live-note]")).to_be_visible()
    mark_page(page)
    created = api.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 1}).json()
    row = page.locator(f'tr[data-cluster-id="{created["id"]}"]')
    expect(row.locator('[data-field="state"]')).to_have_text("ready", timeout=30_000)
    expect(row.locator("a")).to_have_text(created["name"])
    assert still_same_page(page)
    screenshot(page, "dashboard-clusters")
    api.delete(f"/api/v1/clusters/{created['id']}")
    expect(row).to_have_count(0, timeout=30_000)  # gone from the list, still no reload
    assert still_same_page(page)


def test_the_cluster_page_is_live(page: Page, sm: ServiceManager, api: httpx.Client) -> None:
    created = api.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 1}).json()
    wait_state(api, created["id"], {"ready"}, timeout=60)
    sign_in(page, sm, f"/ui/clusters/{created['id']}")
    lights = page.locator(".light")
    expect(lights).to_have_count(2)
    for index in range(2):  # both web servers answer: green, and said in words
        expect(lights.nth(index)).to_have_class("light up", timeout=15_000)
        expect(lights.nth(index)).to_have_attribute("aria-label", "reachable")
    mark_page(page)
    api.patch(f"/api/v1/clusters/{created['id']}", json={"workers": 2})
    expect(page.locator("#nodes")).to_contain_text("worker-2", timeout=30_000)  # the section refreshed
    expect(page.locator('[data-field="state"]')).to_have_text("ready", timeout=30_000)
    expect(page.locator("[data-timeline]")).to_contain_text("requested 2 worker(s)")
    expect(page.locator("[data-deployment-log]")).to_contain_text("scale: requested 2 worker(s)")
    expect(page.locator('.heading + .hint [data-field="workers"]')).to_have_text("2")
    expect(page.get_by_label("Workers")).to_have_value("2")  # the scale field follows too
    assert still_same_page(page)
    screenshot(page, "dashboard-cluster", full_page=True)

    # A process log, followed: each request to the web server adds a line.
    page.get_by_role("link", name="master / webecho-web").click()
    log = page.locator("[data-process-log]")
    expect(log).to_be_visible()
    mark_page(page)
    url = api.get(f"/api/v1/clusters/{created['id']}").json()["outputs"]["frameworks"]["webecho"]["url"]
    httpx.get(f"{url}followed-live", trust_env=False)
    expect(log).to_contain_text("GET /followed-live", timeout=15_000)
    assert still_same_page(page)


def test_the_keyboard_reaches_the_form_and_its_errors(page: Page, page_checks: PageChecks,
                                                     sm: ServiceManager) -> None:
    # The form comes back with the API's status, 422, which the console reports as a failed load.
    page_checks.expect_console_error(r"status of 422 .*/ui/clusters/new\)$")
    sign_in(page, sm, "/ui/clusters/new")
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # from the main area on: the link to the questionnaire, then the form
    expect(page.get_by_role("link", name="Answer a few questions")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#name")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#workers")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("-1")
    # Only the chosen provider's settings are shown (with the script on).
    expect(page.locator('[data-provider="openstack"]')).to_be_hidden()
    page.get_by_label("Where the nodes live").select_option("ssh")
    expect(page.locator('[data-provider="ssh"]')).to_be_visible()
    page.get_by_label("Where the nodes live").select_option("local")
    page.get_by_label("webecho", exact=True).check()
    page.get_by_role("button", name="Create cluster").press("Enter")
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()  # the script moves the focus to what went wrong
    expect(page.locator("#workers")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert").first).to_contain_text("workers")
    outline = page.evaluate("""() => { const s = document.querySelector('#error-summary a');
        s.focus(); return getComputedStyle(s).outlineStyle; }""")
    assert outline == "solid"  # focus that shows


@pytest.mark.parametrize("path", ["/ui/clusters", "/ui/clusters/new?frameworks=dask&frameworks=spark",
                                  "/ui/frameworks"])
def test_pages_fit_a_phone(page: Page, sm: ServiceManager, path: str) -> None:
    page.set_viewport_size(PHONE)
    sign_in(page, sm, path)
    widest = page.evaluate("document.documentElement.scrollWidth")
    assert widest <= PHONE["width"], f"{path} is {widest} px wide"
    name = {"/ui/clusters": "list", "/ui/frameworks": "frameworks"}.get(path, "new")
    screenshot(page, f"dashboard-phone-{name}")
