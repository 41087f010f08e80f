"""The service manager's API documentation (/docs, /redoc) in a real browser: every operation
of /openapi.json rendered, nothing fetched from outside loopback, no console error (the `page`
fixture's checks), and Swagger UI's "Try it out" answered by the live API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from browser import screenshot
from playwright.sync_api import Page, expect

from sm_fixtures import ServiceManager

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture(scope="module")
def operations(sm: ServiceManager) -> list[tuple[str, str, str]]:
    """(method, path, operationId) of every operation the schema publishes."""
    with httpx.Client(base_url=sm.url, timeout=30, trust_env=False) as anonymous:
        schema: dict[str, Any] = anonymous.get("/openapi.json").json()
    found = [(method, path, op["operationId"]) for path, item in schema["paths"].items()
             for method, op in item.items() if method in METHODS]
    assert len(found) > 10, found
    return found


def test_swagger_ui_renders_every_operation(page: Page, sm: ServiceManager,
                                           operations: list[tuple[str, str, str]]) -> None:
    page.goto(f"{sm.url}/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    rendered = page.eval_on_selector_all(
        ".opblock", """blocks => blocks.map(b => [
            b.querySelector('.opblock-summary-method').textContent.toLowerCase(),
            b.querySelector('.opblock-summary-path').getAttribute('data-path')])""")
    assert sorted(map(tuple, rendered)) == sorted((method, path) for method, path, _ in operations)
    expect(page.locator(".info .title")).to_contain_text("DISCO")
    screenshot(page, "api-docs-swagger")


def test_redoc_renders_every_operation(page: Page, sm: ServiceManager,
                                       operations: list[tuple[str, str, str]]) -> None:
    page.goto(f"{sm.url}/redoc")
    expect(page.locator("[data-section-id^='operation/']").first).to_be_attached()
    sections = set(page.eval_on_selector_all(
        "[data-section-id^='operation/']", "els => els.map(e => e.getAttribute('data-section-id'))"))
    assert sections == {f"operation/{op_id}" for _, _, op_id in operations}
    # The side menu lists them too, and the one image it shows is no longer Redocly's CDN logo.
    expect(page.locator("[role=menuitem]", has_text="Health").first).to_be_visible()
    assert all(src.startswith(("data:", sm.url)) for src in page.eval_on_selector_all("img", "i => i.map(x => x.src)"))
    screenshot(page, "api-docs-redoc")


def test_swagger_try_it_out_with_a_token(page: Page, sm: ServiceManager) -> None:
    token = sm.token()
    page.goto(f"{sm.url}/docs")
    page.locator(".btn.authorize").first.click()
    dialog = page.locator(".dialog-ux .modal-ux")
    scheme = dialog.locator(".auth-container", has_text="X-Auth-Token")
    scheme.locator("input").fill(token)
    scheme.locator("button.authorize").click()
    expect(scheme.locator("button", has_text="Logout")).to_be_visible()
    dialog.locator("button.close-modal").click()
    expect(dialog).to_have_count(0)

    operation = page.locator("#operations-frameworks-listFrameworks")
    operation.locator(".opblock-summary-control").click()
    operation.get_by_role("button", name="Try it out").click()
    with page.expect_response(lambda r: r.url == f"{sm.url}/api/v1/frameworks") as answer:
        operation.get_by_role("button", name="Execute").click()
    request_headers = answer.value.request.all_headers()
    assert answer.value.status == 200 and request_headers.get("x-auth-token") == token
    live = operation.locator(".live-responses-table")
    expect(live.locator("tr.response .response-col_status")).to_have_text("200")
    expect(live.locator("tr.response .response-col_description")).to_contain_text('"name"')
    # Only the server's answer is pictured: the request's curl line would show the token.
    assert token not in live.inner_text()
    screenshot(live, "api-docs-try-it-out")
