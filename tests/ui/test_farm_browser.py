"""The task farm's page in a real browser (tests/ui/browser.py's Chromium, network guard and
console checks): signed in, the page follows a project run by a real `disco farm client` without
a reload: the client comes online with its slots measured, units done rise to all of them, the
project turns done. And the page fits a 375 px wide phone."""

from __future__ import annotations

from pathlib import Path

from browser import screenshot
from playwright.sync_api import Page, expect

from dashboard_steps import PHONE, mark_page, sign_in, still_same_page
from farm_clients import ClientProc, enrollment_key
from farm_steps import Owner, submit
from sm_fixtures import ServiceManager

UNITS = 16


def test_the_farm_page_is_live(page: Page, sm: ServiceManager, tmp_path: Path) -> None:
    owner = Owner(sm, "tenant-a")
    project = submit(owner, tmp_path, "browser-farm", UNITS, unit_seconds=0.3)
    key = enrollment_key(owner, tmp_path / "key")  # type: ignore[arg-type]
    sign_in(page, sm, "/ui/farm")
    expect(page.locator("[data-live-note]")).to_be_visible()
    row = page.locator(f'tr[data-project-id="{project}"]')
    expect(row.locator('[data-field="units_done"]')).to_have_text("0")
    expect(row.locator('[data-field="state"]')).to_have_text("open")
    expect(page.locator('[data-field="clients_online"]')).to_have_text("0")
    mark_page(page)
    client = ClientProc(sm.url, key, tmp_path / "browser-volunteer", slots=2, env={"FARM_TEST_SPIN": "0.3"},
                        extra=("--seconds-per-slot", "0.6"))
    try:
        volunteer = page.locator("tr[data-client-id]", has_text="browser-volunteer")
        expect(volunteer.locator('[data-field="online"]')).to_have_text("online", timeout=30_000)
        expect(page.locator('[data-field="clients_online"]')).to_have_text("1")
        slots = page.locator("table.farm-slots tr[data-slot]")
        expect(slots).to_have_count(2)
        expect(slots.first.locator('[data-field="memory_mb"]')).to_contain_text("MiB", timeout=30_000)
        expect(row.locator('[data-field="units_done"]')).to_have_text(str(UNITS), timeout=90_000)
        expect(row.locator('[data-field="state"]')).to_have_text("done", timeout=30_000)
        expect(volunteer.locator('[data-field="units_done"]')).to_have_text(str(UNITS))
        assert still_same_page(page)
        screenshot(page, "dashboard-farm", full_page=True)
    finally:
        client.stop()


def test_the_farm_page_fits_a_phone(page: Page, sm: ServiceManager) -> None:
    page.set_viewport_size(PHONE)
    sign_in(page, sm, "/ui/farm")
    widest = page.evaluate("document.documentElement.scrollWidth")
    assert widest <= PHONE["width"], f"/ui/farm is {widest} px wide"
    screenshot(page, "dashboard-phone-farm")
