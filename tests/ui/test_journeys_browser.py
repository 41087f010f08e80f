"""Whole journeys through the dashboard in Chromium (tests/ui/browser.py: loopback only, no
console error unless a test says so), as a user clicks them: a Dask cluster from sign-in to
delete; the questionnaire to a recommended cluster; a form error that creates nothing; another
tenant's cluster out of reach by URL; the questionnaire at 375 px."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from browser import PageChecks, screenshot
from playwright.sync_api import Page, expect

from dashboard_steps import PHONE, mark_page, sign_in, still_same_page
from sm_fixtures import ServiceManager, wait_state

READY_MS = 120_000


@pytest.fixture()
def api(sm: ServiceManager) -> Iterator[httpx.Client]:
    with sm.client("tenant-a") as client:
        yield client


def all_clusters(api: httpx.Client) -> list[dict[str, object]]:
    answer = api.get("/api/v1/clusters", params={"include_deleted": "true"})
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def delete_quietly(api: httpx.Client, cluster_id: str | None) -> None:
    """Clean-up after a test, whatever it left: the cluster deleted and gone."""
    if cluster_id and api.get(f"/api/v1/clusters/{cluster_id}").json().get("state") != "deleted":
        api.delete(f"/api/v1/clusters/{cluster_id}")
        wait_state(api, cluster_id, {"deleted"}, timeout=90)


def cluster_id_of(page: Page) -> str:
    found = re.search(r"/ui/clusters/([0-9a-f-]{36})$", page.url)
    assert found, page.url
    return found.group(1)


def create_through_the_form(page: Page) -> str:
    """Submit the create form as it is; the browser lands on the new cluster's page, whose state
    as first served is not ready yet (so `ready` must arrive live)."""
    with page.expect_response(lambda r: r.request.method == "GET"
                              and re.search(r"/ui/clusters/[0-9a-f-]{36}$", r.url) is not None) as first:
        page.get_by_role("button", name="Create cluster").click()
    served = first.value.text()
    mark_page(page)
    state = re.search(r'data-field="state">([^<]*)<', served)
    assert state is not None and state.group(1) != "ready", "already ready when first served"
    return cluster_id_of(page)


def test_a_dask_cluster_from_sign_in_to_delete(page: Page, sm: ServiceManager, api: httpx.Client) -> None:
    cluster_id = None
    try:
        sign_in(page, sm)
        page.locator("#main").get_by_role("link", name="New cluster").click()
        page.get_by_label("Workers").fill("1")
        page.get_by_label("Where the nodes live").select_option("local")
        page.get_by_label("dask", exact=True).check()
        cluster_id = create_through_the_form(page)
        state = page.locator('[data-field="state"]')
        expect(state).to_have_text("ready", timeout=READY_MS)  # live: no reload
        assert still_same_page(page)
        log = page.locator("[data-deployment-log]")
        expect(log).to_be_visible()
        expect(log).to_contain_text("ready")
        expect(page.locator("[data-timeline]")).to_contain_text("ready")

        # A process log: the scheduler's, as it was written.
        page.get_by_role("link", name="master / dask-scheduler").click()
        expect(page.locator("[data-process-log]")).to_contain_text("Scheduler", timeout=15_000)
        page.go_back()

        # Scale to 2 through the form; the page shows the new node once it is ready.
        page.get_by_label("Workers").fill("2")
        page.get_by_role("button", name="Scale").click()
        expect(page.locator("#nodes")).to_contain_text("worker-2", timeout=READY_MS)
        expect(state).to_have_text("ready", timeout=READY_MS)
        expect(page.get_by_label("Workers")).to_have_value("2")
        assert api.get(f"/api/v1/clusters/{cluster_id}").json()["workers"] == 2

        # Delete: a confirmation page first, then gone from the list (live).
        page.get_by_role("link", name="Delete…").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Delete .*\?$"))
        page.get_by_role("button", name=re.compile(r"^Delete ")).click()
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Clusters").click()
        expect(page.locator(f'tr[data-cluster-id="{cluster_id}"]')).to_have_count(0, timeout=READY_MS)
        wait_state(api, cluster_id, {"deleted"}, timeout=90)
    finally:
        delete_quietly(api, cluster_id)


def test_the_questionnaire_leads_to_a_cluster(page: Page, sm: ServiceManager, api: httpx.Client) -> None:
    cluster_id = None
    expected = api.post("/api/v1/recommendations", json={"work": ["arrays-ml"], "data_size": "5GB",
                                                         "providers": ["local"]}).json()
    try:
        sign_in(page, sm)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Which cluster?").click()
        page.get_by_label("Python arrays, dataframes and machine learning").check()
        page.get_by_label("How much data will the cluster work on?").fill("5GB")
        expect(page.get_by_label("This machine (local)")).to_be_checked()  # the default
        screenshot(page, "dashboard-questionnaire", full_page=True)
        page.get_by_role("button", name="Recommend", exact=True).click()

        result = page.locator("#recommendation")
        expect(result.get_by_role("heading", level=2)).to_contain_text("Dask")
        for fw in expected["frameworks"]:
            for reason in fw["reasons"]:
                expect(page.locator(f"#rec-{fw['name']}")).to_contain_text(reason)
        for reason in expected["workers_reasons"]:
            expect(page.locator("#rec-workers")).to_contain_text(reason)
        for reason in expected["provider_reasons"]:
            expect(page.locator("#rec-provider")).to_contain_text(reason)
        beaten = [a for a in expected["alternatives"] if a["kind"] == "framework"]
        assert beaten, expected["alternatives"]
        for alt in beaten:
            expect(page.locator(f"#rec-{alt['instead_of']}")).to_contain_text(alt["why_not"])
        expect(page.get_by_label("Python arrays, dataframes and machine learning")).to_be_checked()  # kept
        screenshot(page, "dashboard-recommendation", full_page=True)

        # One click to the create form, filled in; then create it.
        page.get_by_role("link", name="Create this cluster").click()
        expect(page).to_have_url(re.compile(r"/ui/clusters/new\?"))
        for fw in (f for f in expected["frameworks"] if f["role"] == "chosen"):
            expect(page.get_by_label(fw["name"], exact=True)).to_be_checked()
        expect(page.get_by_label("Workers")).to_have_value(str(expected["workers"]))
        expect(page.get_by_label("Where the nodes live")).to_have_value(expected["provider"])
        cluster_id = create_through_the_form(page)
        expect(page.locator('[data-field="state"]')).to_have_text("ready", timeout=READY_MS)
        assert still_same_page(page)
        made = api.get(f"/api/v1/clusters/{cluster_id}").json()
        assert [f["name"] for f in made["spec"]["frameworks"]] == [f["name"] for f in expected["spec"]["frameworks"]]
        assert made["workers"] == expected["workers"] and made["provider"] == expected["provider"]
    finally:
        delete_quietly(api, cluster_id)


def test_a_form_error_shows_next_to_its_field_and_nothing_is_created(page: Page, page_checks: PageChecks,
                                                                      sm: ServiceManager, api: httpx.Client) -> None:
    # Both forms come back with the status of their check, 422: the console reports a failed load.
    page_checks.expect_console_error(r"status of 422 .*/ui/clusters/new\)$")
    page_checks.expect_console_error(r"status of 422 .*/ui/recommend\?")
    before = all_clusters(api)
    sign_in(page, sm, "/ui/clusters/new")
    page.get_by_label("Name (optional)").fill("keep-me")
    page.get_by_label("Workers").fill("-1")
    page.get_by_label("dask", exact=True).check()
    page.get_by_role("button", name="Create cluster").click()
    workers = page.get_by_label("Workers")
    expect(page.locator("#error-summary")).to_be_focused()
    expect(workers).to_have_attribute("aria-invalid", "true")
    said = api.post("/api/v1/clusters", json={"workers": -1, "frameworks": ["dask"]}).json()["error"]
    expect(page.locator("#workers-error")).to_contain_text(said["details"][0]["msg"])
    expect(workers).to_have_attribute("aria-describedby", re.compile(r"\bworkers-error\b"))
    expect(page.get_by_label("Name (optional)")).to_have_value("keep-me")  # the form as it was
    page.locator("#error-summary a").first.click()  # the summary's link leads to the field
    expect(workers).to_be_focused()

    # The questionnaire: no kind of work ticked, a size that is none.
    page.goto(f"{sm.url}/ui/recommend")
    page.get_by_label("How much data will the cluster work on?").fill("lots")
    page.get_by_role("button", name="Recommend", exact=True).click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#work-error")).to_contain_text("at least 1 item")
    expect(page.locator("#data_size-error")).to_contain_text("should match pattern")
    expect(page.get_by_label("How much data will the cluster work on?")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#recommendation")).to_have_count(0)
    page.locator("#error-summary").get_by_role("link", name="What kind of work will it run?").click()
    expect(page.locator("fieldset#work")).to_be_focused()  # the summary leads to the question
    screenshot(page, "dashboard-questionnaire-errors")
    assert all_clusters(api) == before  # nothing created by either


def test_another_tenants_cluster_is_not_reachable_by_url(page: Page, page_checks: PageChecks,
                                                         sm: ServiceManager) -> None:
    page_checks.expect_console_error(r"status of 404 .*/ui/clusters/")
    with sm.client("tenant-b") as other:
        created = other.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 1})
        assert created.status_code == 201, created.text
        cluster_id = created.json()["id"]
        try:
            sign_in(page, sm)
            for path in (f"/ui/clusters/{cluster_id}", f"/ui/clusters/{cluster_id}/ssh-key"):
                answer = page.goto(f"{sm.url}{path}")
                assert answer is not None and answer.status == 404, path
                expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
                expect(page.locator("main")).not_to_contain_text("BEGIN OPENSSH")
            page.get_by_role("link", name="Back to your clusters").click()
            expect(page.locator(f'tr[data-cluster-id="{cluster_id}"]')).to_have_count(0)
            assert other.get(f"/api/v1/clusters/{cluster_id}").json()["target"] == "running"
        finally:
            delete_quietly(other, cluster_id)


def test_the_questionnaire_fits_a_phone(page: Page, sm: ServiceManager) -> None:
    page.set_viewport_size(PHONE)
    path = "/ui/recommend?work=sql-etl&work=notebooks&data_size=200GB&latency=interactive&providers=local"
    sign_in(page, sm, path)
    expect(page.locator("#recommendation")).to_be_visible()
    widest = page.evaluate("document.documentElement.scrollWidth")
    assert widest <= PHONE["width"], f"{path} is {widest} px wide"
    # By keyboard: from the skip link, the recommendation's button comes first, then the questions.
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Create this cluster")).to_be_focused()
    screenshot(page, "dashboard-phone-recommendation")
