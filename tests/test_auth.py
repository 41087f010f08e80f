"""Tokens and tenants: 401 without a valid token, 404 across tenants, secrets never echoed,
and `disco token create` as an administrator runs it."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from sm_fixtures import ServiceManager, wait_state

SM_CATEGORY = 'disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind";'
SECRET_WORD = "xyzzy-" + secrets.token_hex(12)  # unique: any hit in an output is a leak
OCCI_SECRET_WORD = "plugh-" + secrets.token_hex(12)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error


def http(sm: ServiceManager, token: str | None = None, tenant: str | None = None) -> httpx.Client:
    headers = {}
    if token is not None:
        headers["X-Auth-Token"] = token
    if tenant is not None:
        headers["X-Tenant-Name"] = tenant
    return httpx.Client(base_url=sm.url, headers=headers, timeout=30, trust_env=False)


@pytest.fixture(scope="module")
def token_a(sm: ServiceManager) -> str:
    return sm.token("tenant-a")


@pytest.fixture(scope="module")
def token_b(sm: ServiceManager) -> str:
    return sm.token("tenant-b")


@pytest.fixture(scope="module")
def alice(sm: ServiceManager, token_a: str) -> Iterator[httpx.Client]:
    with http(sm, token_a, "tenant-a") as client:
        yield client


@pytest.fixture(scope="module")
def bob(sm: ServiceManager, token_b: str) -> Iterator[httpx.Client]:
    with http(sm, token_b, "tenant-b") as client:
        yield client


@pytest.fixture(scope="module")
def cluster(alice: httpx.Client) -> Iterator[dict[str, Any]]:
    """Tenant A's ready webecho cluster, created over REST with a secret property."""
    spec = {"frameworks": [{"name": "webecho", "properties": {"secret_word": SECRET_WORD}}], "workers": 0}
    response = alice.post("/api/v1/clusters", json=spec)
    assert response.status_code == 201, response.text
    try:
        yield wait_state(alice, response.json()["id"], {"ready"}, timeout=30)
    finally:
        alice.delete(f"/api/v1/clusters/{response.json()['id']}")


# -- 401 ---------------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/api/v1/clusters"),
    ("POST", "/api/v1/clusters"),
    ("GET", "/api/v1/frameworks"),
    ("GET", "/api/v1/clusters/{id}"),
    ("PATCH", "/api/v1/clusters/{id}"),
    ("DELETE", "/api/v1/clusters/{id}"),
    ("GET", "/api/v1/clusters/{id}/ssh-key"),
    ("GET", "/-/"),
    ("GET", "/disco/"),
    ("POST", "/disco/"),
    ("GET", "/disco/{id}"),
    ("POST", "/disco/{id}"),
    ("DELETE", "/disco/{id}"),
]


def _request(client: httpx.Client, method: str, path: str, cluster_id: str) -> httpx.Response:
    body: dict[str, Any] = {}
    if path.startswith("/api/") and method in ("POST", "PATCH"):
        body["json"] = {"workers": 1}
    elif method == "POST":
        body["headers"] = {"Category": SM_CATEGORY, "X-OCCI-Attribute": 'action="suspend"'}
    return client.request(method, path.format(id=cluster_id), **body)


@pytest.mark.parametrize(("token", "code"), [(None, "missing_token"), ("", "missing_token"),
                                             ("not-a-token", "invalid_token")])
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_without_valid_token_401(sm: ServiceManager, alice: httpx.Client, cluster: dict[str, Any],
                                 method: str, path: str, token: str | None, code: str) -> None:
    with http(sm, token, "tenant-a") as client:
        assert_error(_request(client, method, path, cluster["id"]), 401, code)
    # ... and the request changed nothing.
    after = alice.get(f"/api/v1/clusters/{cluster['id']}").json()
    assert (after["state"], after["target"], after["workers"]) == ("ready", "running", 0)
    assert [c["id"] for c in alice.get("/api/v1/clusters").json()] == [cluster["id"]]


def test_bearer_token_works_for_rest(sm: ServiceManager, token_a: str, cluster: dict[str, Any]) -> None:
    with httpx.Client(base_url=sm.url, headers={"Authorization": f"Bearer {token_a}"}, trust_env=False) as c:
        assert c.get(f"/api/v1/clusters/{cluster['id']}").status_code == 200


@pytest.mark.parametrize("tenant", ["tenant-b", "", "TENANT-A", "tenant-ab"])
@pytest.mark.parametrize(("method", "path"), [e for e in ENDPOINTS if not e[1].startswith("/api/")])
def test_occi_tenant_must_match_token(sm: ServiceManager, token_a: str, cluster: dict[str, Any],
                                      method: str, path: str, tenant: str) -> None:
    with http(sm, token_a, tenant) as client:
        assert_error(_request(client, method, path, cluster["id"]), 401, "tenant_mismatch")


def test_occi_without_tenant_header_is_401(sm: ServiceManager, token_a: str) -> None:
    with http(sm, token_a) as client:
        assert_error(client.get("/disco/"), 401, "tenant_mismatch")


def test_health_needs_no_token(sm: ServiceManager) -> None:
    with http(sm) as client:
        response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


# -- tenant isolation --------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("GET", "/api/v1/clusters/{id}", {}),
    ("PATCH", "/api/v1/clusters/{id}", {"json": {"workers": 2}}),
    ("DELETE", "/api/v1/clusters/{id}", {}),
    ("GET", "/api/v1/clusters/{id}/ssh-key", {}),
    ("GET", "/api/v1/clusters/{id}/events", {}),
    ("GET", "/api/v1/clusters/{id}/deployment.log", {}),
    ("GET", "/api/v1/clusters/{id}/logs", {}),
    ("GET", "/api/v1/clusters/{id}/logs/master/web", {}),
    ("POST", "/api/v1/clusters/{id}/actions/suspend", {}),
    ("GET", "/disco/{id}", {"headers": {"Accept": "application/occi+json"}}),
    ("GET", "/disco/{id}", {"headers": {"Accept": "text/occi"}}),
    ("POST", "/disco/{id}", {"headers": {"X-OCCI-Attribute": 'action="suspend"'}}),
    ("POST", "/disco/{id}", {"headers": {"X-OCCI-Attribute": 'icclab.disco.components.heat.slavecount="2"'}}),
    ("DELETE", "/disco/{id}", {}),
])
def test_other_tenant_gets_404(alice: httpx.Client, bob: httpx.Client, cluster: dict[str, Any],
                               method: str, path: str, kwargs: dict[str, Any]) -> None:
    assert_error(bob.request(method, path.format(id=cluster["id"]), **kwargs), 404, "not_found")
    after = alice.get(f"/api/v1/clusters/{cluster['id']}").json()
    assert (after["state"], after["target"], after["workers"]) == ("ready", "running", 0)


def test_other_tenant_does_not_see_it_in_lists(alice: httpx.Client, bob: httpx.Client,
                                               cluster: dict[str, Any]) -> None:
    assert cluster["id"] in [c["id"] for c in alice.get("/api/v1/clusters").json()]
    assert cluster["id"] not in bob.get("/api/v1/clusters").text
    assert cluster["id"] not in bob.get("/api/v1/clusters", params={"include_deleted": True}).text
    assert any(cluster["id"] in loc for loc in alice.get("/disco/", headers={"Accept": "text/occi"})
               .headers.get_list("x-occi-location"))
    for media in ("text/occi", "text/plain", "text/uri-list", "application/occi+json"):
        response = bob.get("/disco/", headers={"Accept": media})
        assert response.status_code == 200
        assert cluster["id"] not in response.text + str(response.headers)


def test_ssh_key_for_owner_only(alice: httpx.Client, bob: httpx.Client, cluster: dict[str, Any]) -> None:
    response = alice.get(f"/api/v1/clusters/{cluster['id']}/ssh-key")
    assert response.status_code == 200
    # The private key really belongs to the public key the cluster shows.
    key = serialization.load_ssh_private_key(response.text.encode(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    assert cluster["ssh_public_key"].startswith(public + " ")
    assert_error(bob.get(f"/api/v1/clusters/{cluster['id']}/ssh-key"), 404, "not_found")


# -- secret properties -------------------------------------------------------------------------

def test_secret_property_never_echoed(sm: ServiceManager, alice: httpx.Client, cluster: dict[str, Any]) -> None:
    cid = cluster["id"]
    # The same secret through OCCI, on a second cluster.
    response = alice.post("/disco/", headers={
        "Category": SM_CATEGORY,
        "X-OCCI-Attribute": "icclab.disco.components.heat.slavecount=0, "
                            "icclab.disco.dependencies.inject=\"{'webecho': ''}\", "
                            f'icclab.disco.components.webecho.secret_word="{OCCI_SECRET_WORD}"'})
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    try:
        occi_id = location.rsplit("/", 1)[1]
        wait_state(alice, occi_id, {"ready"}, timeout=30)
        outputs = [alice.get(path) for path in (
            f"/api/v1/clusters/{cid}", f"/api/v1/clusters/{occi_id}", "/api/v1/clusters",
            f"/api/v1/clusters/{cid}/events", f"/api/v1/clusters/{cid}/deployment.log", "/api/v1/frameworks")]
        for cluster_id in (cid, occi_id):
            outputs += [alice.get(f"/disco/{cluster_id}", headers={"Accept": media})
                        for media in ("text/occi", "text/plain", "application/occi+json")]
        for output in outputs:
            assert output.status_code == 200, output.url
            shown = output.text + "".join(f"{k}: {v}\n" for k, v in output.headers.multi_items())
            assert SECRET_WORD not in shown and OCCI_SECRET_WORD not in shown, output.url
        # The property is known, just not shown.
        attrs = alice.get(location, headers={"Accept": "application/occi+json"}).json()["attributes"]
        assert attrs["icclab.disco.components.webecho.greeting"] == "hello"
        assert "icclab.disco.components.webecho.secret_word" not in attrs
        # Kept encrypted at rest, never in clear.
        for path in sm.data_dir.glob("disco.sqlite*"):
            data = path.read_bytes()
            assert SECRET_WORD.encode() not in data and OCCI_SECRET_WORD.encode() not in data, path
    finally:
        alice.delete(location)


# -- token administration ----------------------------------------------------------------------

def test_token_create_cli(sm: ServiceManager, cluster: dict[str, Any]) -> None:
    result = subprocess.run([sys.executable, "-m", "disco.cli.main", "token", "create", "--tenant", "carol"],
                            env=sm.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token and " " not in token
    with http(sm, token, "carol") as carol:
        assert carol.get("/api/v1/clusters").json() == []          # a new tenant sees nothing
        assert carol.get("/disco/", headers={"Accept": "text/uri-list"}).text == ""
        assert_error(carol.get(f"/api/v1/clusters/{cluster['id']}"), 404, "not_found")
        created = carol.post("/api/v1/clusters", json={"workers": 0})
        assert created.status_code == 201
        assert [c["id"] for c in carol.get("/api/v1/clusters").json()] == [created.json()["id"]]
        assert carol.delete(f"/api/v1/clusters/{created.json()['id']}").status_code == 202
    # Tokens are stored only as hashes.
    for path in sm.data_dir.glob("disco.sqlite*"):
        assert token.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("tenant", ["", "   ", "x" * 65])
def test_token_create_rejects_bad_tenant(sm: ServiceManager, tenant: str) -> None:
    result = subprocess.run([sys.executable, "-m", "disco.cli.main", "token", "create", "--tenant", tenant],
                            env=sm.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
