"""Clusters through the service manager on the cloud in a box with its real Keystone: a REST
cluster whose `cloud` is the demo user's password entry, and a seed-style OCCI create where
the admin's clouds.yaml entry names only Keystone, the project and the domains and the user
gives X-User-Name / X-Password. Both get ready (a Dask job runs), are deleted, and nothing of
them is left; a wrong X-Password fails the cluster with DISCO's reason, shown nowhere."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from cloud_site import CloudSite, cloud_site
from test_openstack_clusters import dask_client

pytestmark = pytest.mark.slow

CATEGORY = 'disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind";'
TENANT = "keystone-seed"
HEAT = {"networkname": "disconetwork-ks", "externalnetworkname": "public", "masterimage": "disco-baked",
        "slaveimage": "disco-baked", "masterflavor": "m1.small", "slaveflavor": "m1.small", "slavecount": "1"}


@pytest.fixture(scope="module")
def site(keystone_cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudSite]:  # type: ignore[no-untyped-def]
    entry = yaml.safe_load(keystone_cloud.cloud.clouds_yaml())["clouds"][keystone_cloud.cloud.name]
    # The admin's entry: where Keystone is and which project; who logs in is each user's.
    admin = {**entry, "auth": {k: v for k, v in entry["auth"].items() if k not in ("username", "password")}}
    admin_dir = tmp_path_factory.mktemp("keystone-admin")
    (admin_dir / "clouds.yaml").write_text(yaml.safe_dump({"clouds": {"box": admin}}))
    with cloud_site(keystone_cloud, tmp_path_factory.mktemp("keystone-sm"), extra_env={
            "DISCO_OPENSTACK_CLOUD": "box", "DISCO_OPENSTACK_CLOUDS_FILE": str(admin_dir / "clouds.yaml")}) as opened:
        yield opened


def occi_create(site: CloudSite, token: str, username: str, password: str) -> str:
    attributes = ",".join([*(f'icclab.disco.components.heat.{k}="{v}"' for k, v in HEAT.items()),
                           "icclab.disco.dependencies.inject=\"{'dask': ''}\""])
    made = httpx.post(f"{site.sm.url}/disco/", trust_env=False, timeout=60, headers={
        "Category": CATEGORY, "Content-type": "text/occi", "X-Tenant-Name": TENANT, "X-Auth-Token": token,
        "X-User-Name": username, "X-Password": password, "X-Region-Name": "RegionOne",
        "X-OCCI-Attribute": attributes})
    assert made.status_code == 201, made.text
    assert password not in made.text + str(made.headers)
    return made.headers["location"].rsplit("/", 1)[1]


def check_ready(site: CloudSite, cluster: dict[str, Any]) -> None:
    assert cluster["state"] == "ready", (cluster["status_reason"], site.events(cluster["id"]))
    stack = site.stack(cluster["id"])  # Heat, asked as the demo user: the stack is in its project
    assert stack is not None and stack.status == "CREATE_COMPLETE"
    assert len(site.servers(stack.id)) == 2
    with dask_client(site, cluster) as client:
        assert client.submit(sum, range(100)).result() == 4950


def test_a_wrong_occi_password_fails_the_cluster_clearly(site: CloudSite) -> None:
    token = site.sm.token(TENANT)
    seed = CloudSite(site.sm, site.cloud, site.entry, token)
    wrong = "wrong-" + secrets.token_urlsafe(16)
    failed = seed.wait(occi_create(site, token, "demo", wrong), {"ready", "failed"}, timeout=120)
    assert failed["state"] == "failed"
    assert "refused the login" in failed["status_reason"], failed["status_reason"]
    events = "\n".join(seed.events(failed["id"]))
    assert wrong not in failed["status_reason"] + events
    assert seed.delete(failed["id"])["state"] == "deleted"
    assert wrong not in site.sm.log_path.read_text(errors="replace")


def test_clusters_log_in_with_a_password_over_rest_and_occi(site: CloudSite) -> None:
    """Made side by side (each is a stack of two servers): REST with the password entry, OCCI
    with the admin's entry and the demo's name and password in headers."""
    token = site.sm.token(TENANT)
    seed = CloudSite(site.sm, site.cloud, site.entry, token)
    password = site.entry["auth"]["password"]
    occi_id = occi_create(site, token, "demo", password)
    with site.api() as api:
        made = api.post("/api/v1/clusters", json=site.request(1, ["dask"]))
        assert made.status_code == 201, made.text
    rest = site.wait(made.json()["id"], {"ready", "failed"}, timeout=900)
    occi = seed.wait(occi_id, {"ready", "failed"}, timeout=900)
    check_ready(site, rest)
    check_ready(seed, occi)

    assert site.delete(rest["id"])["state"] == "deleted"
    assert seed.delete(occi_id)["state"] == "deleted"
    assert site.leftovers(rest) == {} and seed.leftovers(occi) == {}
    assert password not in site.sm.log_path.read_text(errors="replace")
