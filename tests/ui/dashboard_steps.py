"""Steps the browser tests share: signing in through the form, and a mark that tells a live
update from a reload. (A module, not conftest: see the note at the top of tests/sm_fixtures.py.)"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from sm_fixtures import ServiceManager

PHONE = {"width": 375, "height": 740}


def sign_in(page: Page, sm: ServiceManager, path: str = "/ui/clusters", tenant: str = "tenant-a") -> None:
    """Open `path`, be sent to the sign-in form, sign in with a new token of `tenant`, land on `path`."""
    page.goto(f"{sm.url}{path}")
    expect(page).to_have_url(re.compile(r"/ui/signin\?next="))
    page.get_by_label("Token").fill(sm.token(tenant))
    page.get_by_label("Token").press("Enter")
    page.wait_for_url(f"{sm.url}{path}")


def mark_page(page: Page) -> None:
    """A mark a reload would lose: the test checks it is still there after the live update."""
    page.evaluate("window.__noReload = true")


def still_same_page(page: Page) -> bool:
    return bool(page.evaluate("window.__noReload === true"))
