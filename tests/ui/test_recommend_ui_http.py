"""/ui/recommend over plain HTTP (no JavaScript) against a real service manager: the questions are
the API's questionnaire, the recommendation the API's answer (every reason, alternative, warning
and need shown), bad answers come back next to their question in the engine's own words, and
nothing is ever created or changed by asking."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator

import httpx
import pytest

from dashboard_client import Dashboard, field_error, unlabelled
from sm_fixtures import ServiceManager, stored_clusters


@pytest.fixture(scope="module")
def token(sm: ServiceManager) -> str:
    return sm.token("tenant-a")


@pytest.fixture()
def ui(sm: ServiceManager, token: str) -> Iterator[Dashboard]:
    dash = Dashboard(sm.url)
    assert dash.sign_in(token).status_code == 303
    yield dash
    dash.close()


@pytest.fixture()
def api(sm: ServiceManager, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sm.url, headers={"X-Auth-Token": token}, timeout=30, trust_env=False) as client:
        yield client


def text(html: str) -> str:
    """The page's words as a reader gets them (tags dropped, entities decoded, spaces folded)."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_questions_are_the_engines(ui: Dashboard, api: httpx.Client) -> None:
    page = ui.get("/ui/recommend")
    assert page.status_code == 200 and 'id="recommendation"' not in page.text
    assert unlabelled(page.text) == []
    words = text(page.text)
    for q in api.get("/api/v1/recommendations/questions").json()["questions"]:
        assert q["text"] in words and q["help"] in words
        for choice in q["choices"]:
            assert html_lib.escape(choice["label"]) in page.text
        if q["type"] in ("multi", "choice"):  # a fieldset of boxes or radios, the defaults ticked
            for choice in q["choices"]:
                box = re.search(rf'<input[^>]*id="q-{q["id"]}-{choice["value"]}"[^>]*>', page.text, re.S)
                assert box is not None and f'name="{q["id"]}"' in box.group(0)
                ticked = re.search(r"\schecked[\s>]", box.group(0)) is not None  # an attribute of its own
                assert ticked == (choice["value"] in (q.get("default") or [])
                                                       if q["type"] == "multi" else choice["value"] == q.get("default"))
        else:
            assert re.search(rf'<input[^>]*id="{q["id"]}"[^>]*value="{q.get("default", "")}"', page.text, re.S)
    assert re.search(r'<form method="get" action="/ui/recommend"', page.text)  # changes nothing: a GET
    assert '<a href="/ui/recommend" aria-current="page">' in page.text  # in the nav
    assert 'href="/ui/recommend"' in ui.get("/ui/clusters/new").text  # and from the create form


def test_the_recommendation_is_the_apis_with_every_reason(sm: ServiceManager, ui: Dashboard,
                                                          api: httpx.Client) -> None:
    before = stored_clusters(sm)
    answers = {"work": ["sql-etl", "notebooks"], "data_size": "200GB", "latency": "interactive",
               "language": "python", "max_nodes": 6, "providers": ["local", "openstack"]}
    expected = api.post("/api/v1/recommendations", json=answers).json()
    query = [(k, str(item)) for k, v in answers.items() for item in (v if isinstance(v, list) else [v])]
    page = ui.get("/ui/recommend", params=query)
    assert page.status_code == 200, page.text[:2000]
    words = text(page.text)
    for fw in expected["frameworks"]:
        assert fw["label"] in words
        for reason in fw["reasons"]:
            assert reason in words
    for reason in expected["workers_reasons"] + expected["provider_reasons"] + expected["warnings"]:
        assert reason in words
    assert expected["alternatives"]
    for alt in expected["alternatives"]:
        assert alt["why_not"] in words
    for need in expected["needs"]:
        assert need["message"] in words
    link = re.search(r'<a class="button" href="([^"]*)" id="create-recommended">Create this cluster</a>', page.text)
    assert link is not None and html_lib.unescape(link.group(1)) == expected["form_url"]
    assert ("disco recommend --work sql-etl --work notebooks --data-size 200GB --language python "
            "--latency interactive --max-nodes 6 --provider local --provider openstack") in words
    # The answers stay in the form, to change them and ask again.
    assert re.search(r'id="q-work-sql-etl"[^>]*\schecked\s', page.text, re.S)
    assert re.search(r'id="q-providers-openstack"[^>]*\schecked\s', page.text, re.S)
    assert re.search(r'id="data_size"[^>]*value="200GB"', page.text, re.S)
    # The link opens the create form with its choices made.
    form = ui.get(html_lib.unescape(link.group(1))).text
    for fw in (f for f in expected["frameworks"] if f["role"] == "chosen"):
        assert re.search(rf'id="fw-{fw["name"]}"[^>]*checked', form, re.S)
    assert stored_clusters(sm) == before  # asking created nothing


def test_needs_are_shown(ui: Dashboard, api: httpx.Client) -> None:
    """OpenStack only: the recommendation needs a cloud the answers cannot give."""
    expected = api.post("/api/v1/recommendations", json={"work": ["arrays-ml"], "providers": ["openstack"]}).json()
    assert expected["needs"]
    page = ui.get("/ui/recommend", params=[("work", "arrays-ml"), ("providers", "openstack")])
    assert page.status_code == 200 and 'id="needs"' in page.text
    for need in expected["needs"]:
        assert need["message"] in text(page.text) and need["code"] in page.text


def test_bad_answers_come_back_next_to_their_question(sm: ServiceManager, ui: Dashboard,
                                                      api: httpx.Client) -> None:
    before = stored_clusters(sm)
    page = ui.get("/ui/recommend", params=[("data_size", "lots"), ("max_nodes", "99"), ("language", "cobol"),
                                           ("latency", "batch")])  # no work, no provider ticked
    assert page.status_code == 422
    issues = api.post("/api/v1/recommendations", json={"data_size": "lots", "max_nodes": 99, "language": "cobol",
                                                       "work": [], "providers": []}).json()["error"]["details"]
    said = {issue["loc"][0]: issue["msg"] for issue in issues}
    assert set(said) == {"data_size", "max_nodes", "language", "work", "providers"}
    for qid, message in said.items():
        assert field_error(page.text, qid) == message  # the engine's model's own words, by the question
    summary = re.search(r'<div class="summary" role="alert" tabindex="-1" id="error-summary">(.*?)</div>',
                        page.text, re.S)
    assert summary is not None and all(f'href="#{qid}"' in summary.group(1) for qid in said)
    assert re.search(r'id="data_size"[^>]*value="lots"', page.text, re.S)  # the form as it was
    assert re.search(r'id="max_nodes"[^>]*value="99"', page.text, re.S)
    assert 'id="recommendation"' not in page.text
    assert unlabelled(page.text) == []

    page = ui.get("/ui/recommend", params=[("work", "arrays-ml"), ("max_nodes", "four")])
    assert page.status_code == 422 and field_error(page.text, "max_nodes") == "Input should be a valid integer"
    page = ui.get("/ui/recommend", params=[("work", "arrays-ml"), ("colour", "blue")])
    assert page.status_code == 422 and "colour: Extra inputs are not permitted" in text(page.text)
    assert stored_clusters(sm) == before


def test_empty_fields_take_the_defaults(ui: Dashboard, api: httpx.Client) -> None:
    page = ui.get("/ui/recommend", params=[("work", "tasks"), ("data_size", ""), ("max_nodes", " "),
                                           ("providers", "local")])
    expected = api.post("/api/v1/recommendations", json={"work": ["tasks"]}).json()
    assert page.status_code == 200
    assert html_lib.escape(expected["form_url"]) in page.text
    assert f"--data-size {expected['answers']['data_size']}" in page.text
