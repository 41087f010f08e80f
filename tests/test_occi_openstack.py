"""The seed README's create request (heat attributes, X-User-* headers) against a real `disco sm`:
an OpenStack cluster in the admin's configured cloud, with the user's credentials sealed and
shown nowhere.

No OpenStack runs here: the admin's entries point at tests/empty_cloud.py, a loopback stand-in
for the cloud's two HTTP APIs (Keystone issues a token to any password and records the login;
Heat knows no stack and refuses every create). So the clusters fail at their stack, and their
deletion completes (Heat says there is no stack to delete); each test deletes what it made."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from empty_cloud import EmptyCloudServer, empty_cloud
from sm_fixtures import ServiceManager, free_port, wait_until

SEED_CATEGORY = 'disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind";'
TENANT = "os-tenant"
CLOUD = "science"
# Unique, so that a hit in any answer, log or database file can only be a leak.
USER_PASSWORD = "user-pw-" + secrets.token_hex(12)
ATTRIBUTE_PASSWORD = "attr-pw-" + secrets.token_hex(12)
ADMIN_PASSWORD = "admin-pw-" + secrets.token_hex(12)
BOX_TOKEN = "box-token-" + secrets.token_hex(12)
CLOUD_PORT = free_port()
CLOUD_URL = f"http://127.0.0.1:{CLOUD_PORT}"
ENTRIES = {
    "password": {"auth_type": "password", "region_name": "RegionOne",
                 "auth": {"auth_url": f"{CLOUD_URL}/v3", "username": "admin",
                          "password": ADMIN_PASSWORD, "project_name": "science",
                          "user_domain_name": "Default", "project_domain_name": "Default"}},
    "admin_token": {"auth_type": "admin_token", "auth": {"endpoint": f"{CLOUD_URL}/v1/box", "token": BOX_TOKEN}},
}


HEAT = {
    "icclab.disco.components.heat.networkname": "disconetwork-1a2b3c4d",
    "icclab.disco.components.heat.externalnetworkname": "public",
    "icclab.disco.components.heat.masterimage": "debian-12-master",
    "icclab.disco.components.heat.slaveimage": "debian-12-slave",
    "icclab.disco.components.heat.masterflavor": "m1.large",
    "icclab.disco.components.heat.slaveflavor": "m1.medium",
    "icclab.disco.components.heat.slavecount": "2",
    "icclab.disco.dependencies.inject": "{'webecho': ''}",
}
OPTIONS = {"master_image": "debian-12-master", "worker_image": "debian-12-slave", "master_flavor": "m1.large",
           "worker_flavor": "m1.medium", "external_network": "public"}
SECRETS = (USER_PASSWORD, ATTRIBUTE_PASSWORD, ADMIN_PASSWORD, BOX_TOKEN)
STATUS_OF = {"pending": "CREATE_IN_PROGRESS", "provisioning": "CREATE_IN_PROGRESS",
             "installing": "CREATE_IN_PROGRESS", "failed": "CREATE_FAILED", "deleting": "DELETE_IN_PROGRESS"}


def attribute_header(attrs: dict[str, str]) -> str:
    return ",".join(f'{name}="{value}"' for name, value in attrs.items())


def seed_headers(token: str, attrs: dict[str, str], **credentials: str) -> dict[str, str]:
    """The README's create headers; `credentials` are its X-User-Name / X-Password / X-Region-Name."""
    return {"Category": SEED_CATEGORY, "Content-type": "text/occi", "X-Tenant-Name": TENANT,
            "X-Auth-Token": token, "X-OCCI-Attribute": attribute_header(attrs),
            **{f"X-{name.replace('_', '-')}": value for name, value in credentials.items()}}


def write_clouds(path: Path, entry: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump({"clouds": {CLOUD: entry, "other": ENTRIES["password"]}}))


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret in {where}"


def shown(response: httpx.Response) -> str:
    return response.text + "".join(f"{k}: {v}\n" for k, v in response.headers.multi_items())


@pytest.fixture(scope="module")
def clouds_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("admin") / "clouds.yaml"
    write_clouds(path, ENTRIES["admin_token"])
    return path


@pytest.fixture(scope="module")
def cloud() -> Iterator[EmptyCloudServer]:
    with empty_cloud("127.0.0.1", CLOUD_PORT) as server:
        yield server


@pytest.fixture(scope="module")
def os_sm(tmp_path_factory: pytest.TempPathFactory, clouds_file: Path, cloud: EmptyCloudServer
          ) -> Iterator[ServiceManager]:
    """A service manager whose admin configured the cloud (its clouds.yaml is read at each create)."""
    manager = ServiceManager(tmp_path_factory.mktemp("disco-os"), extra_env={
        "DISCO_OPENSTACK_CLOUD": CLOUD, "DISCO_OPENSTACK_CLOUDS_FILE": str(clouds_file)}).start()
    try:
        yield manager
    finally:
        manager.cleanup()


@pytest.fixture(scope="module")
def token(os_sm: ServiceManager) -> str:
    return os_sm.token(TENANT)


def test_without_a_configured_cloud_the_answer_is_409(sm: ServiceManager) -> None:
    token = sm.token(TENANT)
    response = httpx.post(f"{sm.url}/disco/", trust_env=False, headers=seed_headers(
        token, HEAT, User_Name="alice", Password=USER_PASSWORD, Region_Name="RegionOne"))
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "openstack_not_configured"
    assert "DISCO_OPENSTACK_CLOUD" in error["message"]
    assert_no_secret(shown(response), "the 409")
    assert httpx.get(f"{sm.url}/disco/", headers={"X-Auth-Token": token, "X-Tenant-Name": TENANT,
                                                  "Accept": "text/uri-list"}, trust_env=False).text == ""


@pytest.mark.parametrize(("attrs", "credentials", "code"), [
    (HEAT, {"User_Name": "alice"}, "missing_credentials"),
    (HEAT, {"Password": USER_PASSWORD}, "missing_credentials"),
    (HEAT, {}, "missing_credentials"),
    ({**HEAT, "icclab.disco.deployer.password": ATTRIBUTE_PASSWORD}, {"User_Name": "alice", "Password": USER_PASSWORD},
     "conflicting_credentials"),
    ({**HEAT, "icclab.disco.provider": "local"}, {"User_Name": "alice", "Password": USER_PASSWORD},
     "openstack_attribute"),
    ({**HEAT, "icclab.disco.deployer.auth_url": f"{CLOUD_URL}/v3"},
     {"User_Name": "alice", "Password": USER_PASSWORD}, "openstack_attribute"),
])
def test_bad_credentials_are_422(os_sm: ServiceManager, token: str, attrs: dict[str, str],
                                 credentials: dict[str, str], code: str) -> None:
    response = httpx.post(f"{os_sm.url}/disco/", headers=seed_headers(token, attrs, **credentials), trust_env=False)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert_no_secret(shown(response), f"the 422 {code}")


@contextmanager
def created_cluster(os_sm: ServiceManager, token: str, headers: dict[str, str]) -> Iterator[str]:
    response = httpx.post(f"{os_sm.url}/disco/", headers=headers, trust_env=False)
    assert response.status_code == 201, response.text
    assert response.text == "OK"
    assert_no_secret(shown(response), "the 201")
    location = response.headers["location"]
    try:
        yield location
    finally:
        occi = {"X-Auth-Token": token, "X-Tenant-Name": TENANT}
        httpx.delete(location, headers=occi, trust_env=False)
        wait_until(lambda: httpx.get(location, headers=occi, trust_env=False).status_code == 404,
                   timeout=90, what=f"{location} deleted")


@pytest.mark.parametrize("entry", ["admin_token", "password"])
def test_seed_create_makes_an_openstack_cluster(os_sm: ServiceManager, token: str, clouds_file: Path,
                                                cloud: EmptyCloudServer, entry: str) -> None:
    write_clouds(clouds_file, ENTRIES[entry])
    cloud.logins.clear()
    # The README's headers, and the same credentials again as deployer attributes (they agree).
    attrs = {**HEAT, "icclab.disco.deployer.username": "alice", "icclab.disco.deployer.region": "RegionTwo"}
    headers = seed_headers(token, attrs, User_Name="alice", Password=USER_PASSWORD, Region_Name="RegionTwo")
    with created_cluster(os_sm, token, headers) as location:
        cluster_id = location.rsplit("/", 1)[1]
        rest = {"X-Auth-Token": token}
        cluster = httpx.get(f"{os_sm.url}/api/v1/clusters/{cluster_id}", headers=rest, trust_env=False).json()
        assert cluster["provider"] == "openstack"
        assert cluster["spec"]["provider_options"] == OPTIONS
        assert cluster["spec"]["workers"] == 2 and cluster["workers"] == 2
        assert "cloud" not in cluster["spec"] or cluster["spec"]["cloud"] is None

        # GET /disco/<id>: the stack's status follows the cluster's state (no cloud answers:
        # the create is under way or has failed).
        occi = {"X-Auth-Token": token, "X-Tenant-Name": TENANT}
        attributes = httpx.get(location, headers={**occi, "Accept": "application/occi+json"},
                               trust_env=False).json()["attributes"]
        assert attributes["stack_status"] == STATUS_OF[attributes["mcn.service.state"]]
        assert attributes["icclab.disco.provider"] == "openstack"
        assert attributes["icclab.disco.components.heat.masterimage"] == "debian-12-master"
        assert attributes["icclab.disco.components.heat.slaveflavor"] == "m1.medium"
        assert attributes["icclab.disco.components.heat.externalnetworkname"] == "public"
        assert attributes["icclab.disco.components.heat.slavecount"] == 2
        assert attributes["ssh_private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        failed = wait_until(lambda: httpx.get(f"{os_sm.url}/api/v1/clusters/{cluster_id}", headers=rest,
                                              trust_env=False).json()["state"] == "failed",
                            timeout=60, what="the create fails (no cloud)")
        assert failed
        attributes = httpx.get(location, headers={**occi, "Accept": "application/occi+json"},
                               trust_env=False).json()["attributes"]
        assert attributes["stack_status"] == "CREATE_FAILED" and attributes["stack_status_reason"]
        if entry == "password":
            # The user logged in to the admin's Keystone and project as themselves.
            assert cloud.logins and all(login["identity"]["password"]["user"] == {
                "name": "alice", "password": USER_PASSWORD, "domain": {"name": "Default"}} for login in cloud.logins)
            assert cloud.logins[0]["scope"]["project"] == {"name": "science", "domain": {"name": "Default"}}
        else:
            assert cloud.logins == []  # admin_token: no Keystone, the password is checked by nobody

        # The credentials: in no answer, event, log or database file in clear.
        answers = [httpx.get(location, headers={**occi, "Accept": media}, trust_env=False)
                   for media in ("text/occi", "text/plain", "application/occi+json")]
        answers += [httpx.get(f"{os_sm.url}/disco/", headers={**occi, "Accept": "text/plain"}, trust_env=False)]
        for path in ("", "/events", "/deployment.log"):
            answers.append(httpx.get(f"{os_sm.url}/api/v1/clusters/{cluster_id}{path}", headers=rest,
                                     trust_env=False))
        answers.append(httpx.get(f"{os_sm.url}/api/v1/clusters", headers=rest, trust_env=False))
        for answer in answers:
            assert answer.status_code == 200, (answer.url, answer.text)
            assert_no_secret(shown(answer), str(answer.url))
        assert_no_secret(os_sm.log_path.read_text(errors="replace"), "the service manager's log")
        for path in os_sm.data_dir.rglob("*"):
            if path.is_file() and path != clouds_file:
                data = path.read_bytes()
                for secret in SECRETS:
                    assert secret.encode() not in data, f"a secret in clear in {path}"


def test_openapi_names_the_credential_headers(os_sm: ServiceManager) -> None:
    schema = httpx.get(f"{os_sm.url}/openapi.json", trust_env=False).json()
    create = schema["paths"]["/disco/"]["post"]
    headers = {p["name"]: p for p in create["parameters"] if p["in"] == "header"}
    assert {"X-User-Name", "X-Password", "X-Region-Name"} <= set(headers)
    assert not any(headers[h]["required"] for h in ("X-User-Name", "X-Password", "X-Region-Name"))
    assert "openstack_not_configured" in create["responses"]["409"]["description"]
    assert "missing_credentials" in create["description"]
