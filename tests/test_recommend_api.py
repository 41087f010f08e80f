"""/api/v1/recommendations against a real service manager: the questionnaire, a recommendation,
strict answers (422 with the error envelope), a token required, and the property that every
valid answer set gives a `spec` the service manager's own checks accept (a dry run), once what
`needs` lists is added."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from disco.recommend.rules import builtin_rules
from empty_cloud import MADE_UP_AUTH_URL
from sm_fixtures import ServiceManager, stored_clusters
from sshd_fixture import Sshd

QUESTIONS = "/api/v1/recommendations/questions"
RECOMMEND = "/api/v1/recommendations"
PLAN = "/api/v1/clusters?dry_run=true"
RULES = builtin_rules()
# What `needs` asks for an OpenStack cluster, as a user would add it (a cloud nobody is asked:
# a dry run does not reach it; the made_up_cloud fixture answers if anything did).
CLOUD = {"auth_type": "password", "region_name": "RegionOne",
         "auth": {"auth_url": MADE_UP_AUTH_URL, "username": "alice", "password": "pw-recommend",
                  "project_name": "science", "user_domain_name": "Default", "project_domain_name": "Default"}}
OPENSTACK_OPTIONS = {"image": "debian-12", "flavor": "m1.small", "external_network": "public"}

pytestmark = pytest.mark.usefixtures("made_up_cloud")


@pytest.fixture(scope="module")
def client(sm: ServiceManager) -> Iterator[httpx.Client]:
    with sm.client() as c:
        yield c


def test_the_questionnaire_is_served_from_the_rules(client: httpx.Client) -> None:
    answer = client.get(QUESTIONS)
    assert answer.status_code == 200, answer.text
    questions = {q["id"]: q for q in answer.json()["questions"]}
    assert [c["value"] for c in questions["work"]["choices"]] == list(RULES.work)
    assert questions["data_size"]["type"] == "size" and questions["data_size"]["pattern"]
    assert questions["providers"]["default"] == ["local"]


def test_a_recommendation_with_reasons_alternatives_and_a_spec(client: httpx.Client) -> None:
    answer = client.post(RECOMMEND, json={"work": ["sql-etl", "notebooks"], "data_size": "200GB",
                                          "latency": "interactive", "max_nodes": 6, "providers": ["local"]})
    assert answer.status_code == 200, answer.text
    rec = answer.json()
    assert [(f["name"], f["role"]) for f in rec["frameworks"]] == [
        ("spark", "chosen"), ("jupyter", "chosen"), ("java", "dependency")]
    assert rec["answers"] == {"work": ["sql-etl", "notebooks"], "data_size": "200GB", "latency": "interactive",
                              "max_nodes": 6, "providers": ["local"], "language": "python"}
    assert rec["provider"] == "local" and rec["workers"] == 4  # 13 for the data, 5 affordable, 4 here
    assert {a["name"] for a in rec["alternatives"]} == {"dask", "hadoop", "mapreduce", "zeppelin"}
    assert rec["spec"] == {"provider": "local", "workers": 4, "frameworks": [{"name": "spark"}, {"name": "jupyter"}]}
    assert rec["form_url"] == "/ui/clusters/new?provider=local&workers=4&frameworks=spark&frameworks=jupyter"
    assert rec["needs"] == []


def test_recommending_creates_nothing(sm: ServiceManager, client: httpx.Client) -> None:
    before = stored_clusters(sm)
    assert client.post(RECOMMEND, json={"work": ["tasks"]}).status_code == 200
    assert stored_clusters(sm) == before


def test_the_service_managers_limits_and_tenants_count(tmp_path_factory: pytest.TempPathFactory) -> None:
    """DISCO_MAX_WORKERS caps the workers; a provider that cannot keep this tenant apart
    (local, without isolation) is passed over, or named in `needs` with the create's own code."""
    small = ServiceManager(tmp_path_factory.mktemp("recommend-limit"), extra_env={
        "DISCO_MAX_WORKERS": "1", "DISCO_LOCAL_ISOLATION": "none"}).start()
    try:
        with small.client("default") as sole:
            rec = sole.post(RECOMMEND, json={"work": ["tasks"], "data_size": "5TB", "providers": ["local"]}).json()
        with small.client("another") as other:
            only_local = other.post(RECOMMEND, json={"work": ["tasks"], "providers": ["local"]}).json()
            refused = other.post(PLAN, json=only_local["spec"])
            both = other.post(RECOMMEND, json={"work": ["tasks"], "providers": ["local", "openstack"]}).json()
    finally:
        small.cleanup()
    assert rec["workers"] == 1 and "DISCO_MAX_WORKERS" in rec["workers_reasons"][-1] and rec["needs"] == []
    assert [n["code"] for n in only_local["needs"]] == ["isolation_unavailable"]
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "isolation_unavailable"
    assert both["provider"] == "openstack"
    local = next(a for a in both["alternatives"] if a["name"] == "local")
    assert "cannot keep tenants apart" in local["why_not"]


def test_the_ssh_pools_free_hosts_size_an_ssh_cluster(sm: ServiceManager, client: httpx.Client,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two real sshd hosts (this machine, 127.0.9.x) in the pool: SSH is recommended with one
    worker (the other host is the master), and the dry run takes that spec as it is."""
    store = sm.store()
    try:
        admin_token = store.create_token("recommend-ops", admin=True)
    finally:
        store.close()
    folder = tmp_path_factory.mktemp("recommend-hosts")
    servers: list[Sshd] = []
    ids: list[int] = []
    with httpx.Client(base_url=sm.url, headers={"X-Auth-Token": admin_token}, timeout=120, trust_env=False) as admin:
        try:
            for i in range(2):
                servers.append(Sshd(folder / f"sshd-{i}").start())
                host = admin.post("/api/v1/hosts", json={
                    "name": f"recommend-host-{i}", "address": servers[i].address, "port": servers[i].port,
                    "user": "root", "private_key": servers[i].client_key, "prefix": str(folder / f"prefix-{i}")})
                assert host.status_code == 201 and host.json()["state"] == "free", host.text
                ids.append(host.json()["id"])
            rec = client.post(RECOMMEND, json={"work": ["arrays-ml"], "data_size": "5TB", "max_nodes": 10,
                                               "providers": ["ssh"]}).json()
            plan = client.post(PLAN, json=rec["spec"])
        finally:
            for host_id in ids:
                admin.delete(f"/api/v1/hosts/{host_id}")
            for server in servers:
                server.cleanup()
    assert rec["provider"] == "ssh" and rec["workers"] == 1 and rec["needs"] == []
    assert "capped at 1 on machines over SSH: the SSH host pool has 2 free host(s) now" in rec["workers_reasons"]
    assert plan.status_code == 200, plan.text
    assert [n["host"] for n in plan.json()["nodes"]] == [s.address for s in servers]


@pytest.mark.parametrize(("body", "code", "where"), [
    ({}, "invalid_answers", ["work"]),
    ({"work": ["tasks"], "bogus": 1}, "invalid_answers", ["bogus"]),
    ({"work": "tasks"}, "invalid_answers", ["work"]),
    ({"work": ["tasks"], "max_nodes": 1000}, "invalid_answers", ["max_nodes"]),
    ({"work": ["tasks"], "max_nodes": "4"}, "invalid_answers", ["max_nodes"]),
    ({"work": ["tasks"], "max_nodes": 4.5}, "invalid_answers", ["max_nodes"]),
    ({"work": ["tasks"], "providers": []}, "invalid_answers", ["providers"]),
    ({"work": ["tasks"], "providers": ["aws"]}, "invalid_answers", ["providers", 0]),
    ({"work": ["tasks"], "data_size": "lots"}, "invalid_answers", ["data_size"]),
    (["tasks"], "invalid_answers", []),
])
def test_bad_answers_get_422_with_the_error_envelope(client: httpx.Client, body: Any, code: str,
                                                     where: list[Any]) -> None:
    answer = client.post(RECOMMEND, json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["message"].startswith("invalid answers")
    assert where in [issue["loc"] for issue in error["details"]]


def test_a_body_that_is_not_json_gets_422(client: httpx.Client) -> None:
    answer = client.post(RECOMMEND, content=b"{work: tasks", headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_json"


def test_a_whole_number_written_as_a_float_is_taken_as_json_schema_does(client: httpx.Client) -> None:
    answer = client.post(RECOMMEND, json={"work": ["tasks"], "max_nodes": 3.0})
    assert answer.status_code == 200 and answer.json()["answers"]["max_nodes"] == 3


@pytest.mark.parametrize(("method", "path"), [("GET", QUESTIONS), ("POST", RECOMMEND)])
def test_a_token_is_required(sm: ServiceManager, method: str, path: str) -> None:
    for headers, code in (({}, "missing_token"), ({"X-Auth-Token": "not-a-token"}, "invalid_token")):
        answer = httpx.request(method, f"{sm.url}{path}", json={"work": ["tasks"]}, headers=headers, trust_env=False)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == code


def test_the_published_schema_matches_what_the_server_takes_and_answers(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    post = schema["paths"][RECOMMEND]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RecommendationAnswers"}
    answers = jsonschema_rs.validator_for({**schema, "$ref": "#/components/schemas/RecommendationAnswers"})
    recommendation = jsonschema_rs.validator_for({**schema, "$ref": "#/components/schemas/Recommendation"})
    for body in ({"work": ["tasks"]}, {"work": ["tasks"], "extra": 1}, {"work": ["x"]},
                 {"work": ["streaming"], "data_size": "1.5 TB", "max_nodes": 65}):
        answer = client.post(RECOMMEND, json=body)
        assert answers.is_valid(body) is (answer.status_code == 200), (body, answer.text)
        if answer.status_code == 200:
            recommendation.validate(answer.json())


# -- every valid answer set can be created -----------------------------------------------------------

def _choices(qid: str) -> list[str]:
    return RULES.questions[qid].values


ANSWERS = st.fixed_dictionaries({
    "work": st.lists(st.sampled_from(_choices("work")), min_size=1, max_size=6),
    "providers": st.lists(st.sampled_from(_choices("providers")), min_size=1, max_size=3),
}, optional={
    "data_size": st.builds(lambda n, unit: f"{n}{unit}", st.integers(0, 999999), st.sampled_from(["MB", "GB", "TB"])),
    "language": st.sampled_from(_choices("language")),
    "latency": st.sampled_from(_choices("latency")),
    "max_nodes": st.integers(RULES.questions["max_nodes"].min or 2, RULES.questions["max_nodes"].max or 65),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=ANSWERS)
def test_every_valid_answer_set_gives_a_spec_the_service_accepts(client: httpx.Client, answers: dict[str, Any]) -> None:
    rec = client.post(RECOMMEND, json=answers)
    assert rec.status_code == 200, rec.text
    body = rec.json()
    spec, needs = body["spec"], {n["code"] for n in body["needs"]}
    assert spec["provider"] in answers["providers"]
    assert spec["frameworks"], body  # every kind of work has a framework that runs everywhere
    plan = client.post(PLAN, json=spec)
    if not needs:
        assert plan.status_code == 200, (spec, plan.text)
    else:  # refused only for what `needs` said, and accepted once it is added
        assert plan.json()["error"]["code"] in needs, (needs, plan.text)
        if spec["provider"] == "openstack":
            completed = client.post(PLAN, json={**spec, "cloud": CLOUD, "provider_options": OPENSTACK_OPTIONS})
            assert completed.status_code == 200, (spec, completed.text)
        else:  # this pool is empty: SSH clusters need hosts an admin adds
            assert needs == {"no_free_hosts"} and plan.status_code == 409
    planned = plan.json() if plan.status_code == 200 else None
    if planned:
        resolved = set(planned["frameworks"])
        assert resolved == {f["name"] for f in body["frameworks"]}  # dependencies shown as the create adds them
        assert planned["workers"] == body["workers"]
