"""The spec's write-only `cloud` against a real service manager (any provider but OpenStack; the
tests that need that provider are in test_cloud_openstack.py): refused with a provider that does
not read it, refused by key when malformed, and in no case found afterwards in an answer, the
database, the data directory or the service manager's log. The published schema says the same."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from sm_fixtures import ServiceManager, stored_clusters

CLUSTERS = "/api/v1/clusters"
PLAN = f"{CLUSTERS}?dry_run=true"
PASSWORD = "pw-Hq3#sealed-never-shown"
CLOUD = {"auth_type": "password",
         "auth": {"auth_url": "http://127.0.9.254:5000/v3", "username": "alice", "password": PASSWORD,
                  "project_name": "science", "user_domain_name": "Default", "project_domain_name": "Default"},
         "region_name": "RegionOne"}


@pytest.fixture(scope="module")
def api(sm: ServiceManager) -> Iterator[httpx.Client]:
    # The sole tenant: the local provider serves others only as root.
    with sm.client("default") as client:
        yield client


def on_disk_with(folder: Path, secret: str) -> list[str]:
    """Every file under `folder` (the database and its WAL, logs, node directories) whose
    bytes hold `secret`."""
    needle = secret.encode()
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]



@pytest.mark.parametrize("provider", [None, "local", "ssh"])
@pytest.mark.parametrize("path", [CLUSTERS, PLAN])
def test_a_cloud_for_a_provider_that_does_not_read_it_is_refused(sm: ServiceManager, api: httpx.Client,
                                                                 provider: str | None, path: str) -> None:
    before = stored_clusters(sm)
    body: dict[str, Any] = {"workers": 0, "frameworks": ["webecho"], "cloud": CLOUD}
    if provider:
        body["provider"] = provider
    answer = api.post(path, json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "cloud_not_used"
    assert "only read by the openstack provider" in error["message"]
    assert error["details"] == {"provider": provider or "local"}
    assert PASSWORD not in answer.text
    assert stored_clusters(sm) == before


@pytest.mark.parametrize(("cloud", "key"), [
    ({**CLOUD, "auth": {**CLOUD["auth"], "auth_url": f"http://alice:{PASSWORD}@127.0.9.254/v3"}}, "cloud.auth.auth_url"),
    ({**CLOUD, "auth_type": "v2password"}, "cloud.auth_type"),
    ({**CLOUD, "cacert": "/etc/ssl/ca.pem"}, "cloud.cacert"),
    ({**CLOUD, "auth": {k: v for k, v in CLOUD["auth"].items() if k != "username"}},
     "cloud.auth.username or cloud.auth.user_id"),
    (PASSWORD, "cloud"),
])
@pytest.mark.parametrize("path", [CLUSTERS, PLAN])
def test_a_malformed_cloud_is_refused_by_key_without_its_values(api: httpx.Client, cloud: Any, key: str,
                                                                path: str) -> None:
    answer = api.post(path, json={"workers": 0, "provider": "local", "cloud": cloud})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_cloud"
    assert answer.json()["error"]["details"] == {"key": key}
    assert PASSWORD not in answer.text and "/etc/ssl" not in answer.text


def test_no_refused_cloud_leaves_a_trace(sm: ServiceManager, api: httpx.Client) -> None:
    """After the refusals above (and a cluster made without a cloud): the password is in no
    file of the data directory (database and WAL included) and not in the log."""
    made = api.post(CLUSTERS, json={"workers": 0, "frameworks": ["webecho"], "cloud": None})
    assert made.status_code == 201, made.text
    shown = api.get(f"{CLUSTERS}/{made.json()['id']}")
    assert "cloud" not in shown.json()["spec"]
    assert all("cloud" not in c["spec"] for c in api.get(CLUSTERS).json())
    assert api.delete(f"{CLUSTERS}/{made.json()['id']}").status_code == 202
    assert on_disk_with(sm.data_dir, PASSWORD) == []
    assert PASSWORD not in sm.log_path.read_text(errors="replace")


# -- the published schema ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schema(api: httpx.Client) -> dict[str, Any]:
    return api.get("/openapi.json").json()


def test_the_schema_documents_cloud_as_write_only_with_a_harmless_example(schema: dict[str, Any]) -> None:
    models = schema["components"]["schemas"]
    cloud = models["ClusterSpec"]["properties"]["cloud"]
    assert cloud["writeOnly"] is True
    assert "clouds.yaml" in cloud["description"] and "sealed" in cloud["description"]
    (example,) = cloud["examples"]
    assert example["auth"]["application_credential_secret"].startswith("<")  # a placeholder, no secret
    assert jsonschema_rs.validator_for(cloud).is_valid(example)
    # What is stored and answered never has it; a plan has what may be shown of it.
    assert "cloud" not in models["StoredSpec"]["properties"]
    assert models["PlanCloud"]["additionalProperties"] is False
    assert not {"password", "token", "application_credential_secret"} & set(models["PlanCloud"]["properties"])
    assert "cloud" in models["ClusterPlan"]["properties"]


@pytest.mark.parametrize(("body", "status"), [
    ({"workers": 0, "frameworks": ["webecho"], "cloud": None}, 201),
    ({"workers": 0, "frameworks": ["webecho"], "provider": "local", "cloud": CLOUD}, 422),
    ({"workers": 0, "frameworks": ["webecho"], "cloud": CLOUD}, 422),
    ({"workers": 0, "frameworks": ["webecho"], "cloud": {"auth": {}}}, 422),
])
def test_a_cloud_is_valid_for_the_schema_exactly_when_the_server_takes_it(
        schema: dict[str, Any], api: httpx.Client, body: dict[str, Any], status: int) -> None:
    valid = jsonschema_rs.validator_for({**schema, "$ref": "#/components/schemas/ClusterSpec"}).is_valid(body)
    answer = api.post(CLUSTERS, json=body)
    assert answer.status_code == status, answer.text
    assert valid is (status == 201)
    if status == 201:
        assert api.delete(f"{CLUSTERS}/{answer.json()['id']}").status_code == 202
