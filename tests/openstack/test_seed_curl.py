"""The seed README's whole curl sequence, with the real `curl`, against a service manager whose
admin configured the cloud in a box (DISCO_OPENSTACK_CLOUD): list the services, create a cluster
with the heat attributes and the X-User-* headers, find its UUID in the collection, poll it until
the stack is complete and the master's address and the key pair are shown, log in to the master
over SSH with the private key it gave, read the deployment log on port 8084, delete it, and the
collection no longer lists it — and neither Heat nor podman holds anything of it.

The box has no Keystone (its clouds.yaml entry is an admin token): the user's name, password and
region are required and sealed as in a real cloud, but nobody checks the password
(docs/openstack.md)."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloud_site import CloudSite, cloud_site
from disco.cluster.api.occi_format import parse_attributes

pytestmark = pytest.mark.slow

CATEGORY = 'disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind";'
TENANT = "seed-tenant"
PASSWORD = "seed-pw-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def site(test_cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudSite]:  # type: ignore[no-untyped-def]
    admin = tmp_path_factory.mktemp("seed-admin")
    (admin / "clouds.yaml").write_text(test_cloud.cloud.clouds_yaml())
    with cloud_site(test_cloud, tmp_path_factory.mktemp("seed-sm"), extra_env={
            "DISCO_OPENSTACK_CLOUD": test_cloud.cloud.name,
            "DISCO_OPENSTACK_CLOUDS_FILE": str(admin / "clouds.yaml")}) as opened:
        yield opened


def curl(*args: str) -> tuple[int, list[tuple[str, str]], str]:
    """`curl -sS -i …`: the status, the headers (name lower-cased, in order) and the body."""
    done = subprocess.run(["curl", "-sS", "-i", "--noproxy", "*", *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    headers = [(name.strip().lower(), value.strip()) for name, _, value in
               (line.partition(":") for line in lines[1:])]
    return int(lines[0].split()[1]), headers, body


def occi_attributes(headers: list[tuple[str, str]]) -> dict[str, str]:
    return parse_attributes([value for name, value in headers if name == "x-occi-attribute"])


def locations(headers: list[tuple[str, str]]) -> list[str]:
    return [value for name, value in headers if name == "x-occi-location"]


def test_the_seed_readme_curl_sequence(site: CloudSite, tmp_path: Path) -> None:
    base = site.sm.url
    token = site.sm.token(TENANT)
    seed = CloudSite(site.sm, site.cloud, site.entry, token)  # the REST view of the same tenant
    ask = ["-H", "Accept: text/occi", "-H", f"X-Tenant-Name: {TENANT}", "-H", f"X-Auth-Token: {token}"]

    # 1. The services of this service manager: the disco kind.
    status, headers, _ = curl("-X", "GET", f"{base}/-/", *ask)
    assert status == 200
    assert any(name == "category" and value.startswith("disco;") and 'class="kind"' in value
               for name, value in headers), headers

    # 2. Create, with the README's headers and attributes (the box's images, flavors, networks).
    heat = {"networkname": "disconetwork-seed", "externalnetworkname": "public", "masterimage": "disco-baked",
            "slaveimage": "disco-baked", "masterflavor": "m1.small", "slaveflavor": "m1.small", "slavecount": "1"}
    attributes = ",".join([*(f'icclab.disco.components.heat.{k}="{v}"' for k, v in heat.items()),
                           'icclab.disco.deployer.username="alice"',
                           f'icclab.disco.deployer.password="{PASSWORD}"',
                           'icclab.disco.deployer.region="RegionOne"',
                           "icclab.disco.dependencies.inject=\"{'dask': ''}\""])
    status, headers, body = curl(
        "-X", "POST", f"{base}/disco/", "-H", f"Category: {CATEGORY}", "-H", "Content-type: text/occi",
        "-H", f"X-Tenant-Name: {TENANT}", "-H", "X-Region-Name: RegionOne", "-H", "X-User-Name: alice",
        "-H", f"X-Password: {PASSWORD}", "-H", f"X-Auth-Token: {token}", "-H", f"X-OCCI-Attribute: {attributes}")
    assert status == 201 and body.strip() == "OK", body
    location = dict(headers)["location"]
    uuid = location.rsplit("/", 1)[1]

    # 3. The UUID, found again in the collection of this tenant's clusters.
    status, headers, _ = curl("-X", "GET", f"{base}/disco/", *ask)
    assert status == 200 and location in locations(headers)

    # 4. Poll the cluster until the stack is complete: the master's address and the key pair.
    deadline = time.monotonic() + 600
    while True:
        status, headers, _ = curl("-X", "GET", location, *ask)
        assert status == 200
        shown = occi_attributes(headers)
        if shown["stack_status"] == "CREATE_COMPLETE" or shown["mcn.service.state"] == "failed":
            break
        assert shown["stack_status"] == "CREATE_IN_PROGRESS", shown
        assert time.monotonic() < deadline, shown
        time.sleep(1)
    assert shown["mcn.service.state"] == "ready", shown.get("stack_status_reason")
    assert shown["stack_name"] == f"disco-{uuid}"
    assert shown["ssh_key_name"].startswith("disco-")
    assert shown["ssh_private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    cluster = seed.wait(uuid, {"ready"})
    master = next(n for n in cluster["nodes"] if n["role"] == "master")
    assert shown["external_ip"] == master["host"]
    assert shown["ssh_public_key"].split()[:2] == cluster["ssh_public_key"].split()[:2]
    assert shown["icclab.disco.components.heat.masterimage"] == "disco-baked"
    assert int(shown["icclab.disco.components.heat.slavecount"]) == 1
    assert PASSWORD not in "".join(value for _, value in headers)

    # 5. Log in to the master with the private key it gave.
    key = tmp_path / "cluster.key"
    key.write_text(shown["ssh_private_key"])
    key.chmod(0o600)
    login = subprocess.run(["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
                            "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}", "-o", "ConnectTimeout=20",
                            f"debian@{shown['external_ip']}", "hostname"],
                           capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip(), login.stdout

    # The deployment log over HTTP on port 8084, with the cluster's token (never open to all).
    with seed.api() as api:
        web_token = api.get(f"/api/v1/clusters/{uuid}/credentials").json()["web_token"]
    status, _, _ = curl(f"http://{shown['external_ip']}:8084/deploy.log")
    assert status == 401
    status, _, log = curl("-u", f"disco:{web_token}", f"http://{shown['external_ip']}:8084/deploy.log")
    assert status == 200 and log.strip(), log

    # 6. Delete; 7. the collection no longer lists it, and nothing of it is left in the cloud.
    status, _, body = curl("-X", "DELETE", location, "-H", f"Category: {CATEGORY}", "-H", "Content-type: text/occi",
                           "-H", f"X-Tenant-Name: {TENANT}", "-H", f"X-Auth-Token: {token}")
    assert status == 200 and body.strip() == "OK"
    gone = seed.wait(uuid, {"deleted"}, timeout=300)
    status, headers, _ = curl("-X", "GET", f"{base}/disco/", *ask)
    assert status == 200 and location not in locations(headers)
    status, _, _ = curl("-X", "GET", location, *ask)
    assert status == 404
    assert seed.leftovers(gone) == {}
    assert PASSWORD not in site.sm.log_path.read_text(errors="replace")
