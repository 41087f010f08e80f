"""The spec's `cloud` with the openstack provider registered, against a real service manager:
required (`cloud_missing`), shown in a plan only as `describe_cloud`, sealed at create with the
cluster's other secrets and found nowhere else (answers, events, database and data directory,
log), and sent by `disco cluster plan|create --cloud` (which implies the provider) or OS_CLOUD.

The cloud's URL is the stand-in of tests/empty_cloud.py (no OpenStack runs here): Keystone lets
the password in, Heat refuses the stack, so a create's provisioning fails there (its events are
read for the password too) and its delete completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from disco.cluster.cloud_entry import check_cloud_entry, describe_cloud
from disco.cluster.secrets import SecretBox
from empty_cloud import MADE_UP_AUTH_URL
from sm_fixtures import ServiceManager, wait_until, stored_clusters

pytestmark = pytest.mark.usefixtures("made_up_cloud")

CLUSTERS = "/api/v1/clusters"
PLAN = f"{CLUSTERS}?dry_run=true"
PASSWORD = "pw-Vt5#openstack-sealed"
CLOUD = {"auth_type": "password",
         "auth": {"auth_url": MADE_UP_AUTH_URL, "username": "alice", "password": PASSWORD,
                  "project_name": "science", "user_domain_name": "Default", "project_domain_name": "Default"},
         "region_name": "RegionOne"}
# The provider's own (non-secret) choices, as docs/design/openstack-provider.md names them.
OPTIONS = {"master_image": "debian-12", "worker_image": "debian-12", "master_flavor": "m1.small",
           "worker_flavor": "m1.small", "external_network": "public"}
OPENSTACK = {"provider": "openstack", "provider_options": OPTIONS, "workers": 1, "frameworks": ["webecho"]}


@pytest.fixture(scope="module")
def api(sm: ServiceManager) -> Iterator[httpx.Client]:
    with sm.client("default") as client:
        yield client



def on_disk_with(folder: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.parametrize("path", [CLUSTERS, PLAN])
@pytest.mark.parametrize("cloud", [{}, {"cloud": None}])
def test_the_openstack_provider_needs_a_cloud(sm: ServiceManager, api: httpx.Client, path: str,
                                              cloud: dict[str, Any]) -> None:
    before = stored_clusters(sm)
    answer = api.post(path, json={**OPENSTACK, **cloud})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "cloud_missing"
    assert "clouds.yaml" in answer.json()["error"]["message"]
    assert stored_clusters(sm) == before


def test_a_plan_shows_only_what_may_be_shown_of_the_cloud(sm: ServiceManager, api: httpx.Client) -> None:
    before = stored_clusters(sm)
    answer = api.post(PLAN, json={**OPENSTACK, "cloud": CLOUD})
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert plan["provider"] == "openstack"
    assert plan["cloud"] == describe_cloud(CLOUD) == {
        "auth_type": "password", "auth_url": MADE_UP_AUTH_URL, "username": "alice",
        "user_domain_name": "Default", "project_name": "science", "project_domain_name": "Default",
        "region_name": "RegionOne"}
    assert "cloud" not in plan["spec"]
    assert PASSWORD not in answer.text
    assert stored_clusters(sm) == before


def test_a_create_seals_the_cloud_and_shows_it_nowhere(sm: ServiceManager, api: httpx.Client) -> None:
    made = api.post(CLUSTERS, json={**OPENSTACK, "cloud": CLOUD})
    assert made.status_code == 201, made.text
    cluster_id = made.json()["id"]
    assert PASSWORD not in made.text and "cloud" not in made.json()["spec"]

    store = sm.store()
    try:
        row = store.get_cluster(cluster_id)
        assert "cloud" not in row.spec
        # Sealed with the cluster's other secrets, exactly as checked.
        sealed = SecretBox(sm.data_dir).open(row.secrets_enc)
    finally:
        store.close()
    assert sealed["cloud"] == check_cloud_entry(CLOUD)
    assert "credentials" in sealed

    # The provider tries the cloud (which refuses the stack) and says so in the events.
    wait_until(lambda: len(api.get(f"{CLUSTERS}/{cluster_id}/events").json()) >= 2, timeout=60,
               what="the provider's first events")
    for path in (f"{CLUSTERS}/{cluster_id}", f"{CLUSTERS}/{cluster_id}/events", CLUSTERS,
                 f"{CLUSTERS}/{cluster_id}/deployment.log", f"{CLUSTERS}/{cluster_id}/credentials"):
        shown = api.get(path)
        # (The credentials answer 409 not_provisioned: the cluster never got its nodes.)
        assert shown.status_code in ((200, 409) if path.endswith("/credentials") else (200,)), (path, shown.text)
        assert PASSWORD not in shown.text, path
    assert on_disk_with(sm.data_dir, PASSWORD) == []
    assert PASSWORD not in sm.log_path.read_text(errors="replace")
    assert api.delete(f"{CLUSTERS}/{cluster_id}").status_code == 202


def test_a_cloud_that_can_never_log_in_fails_and_its_cluster_is_deleted(sm: ServiceManager,
                                                                         api: httpx.Client) -> None:
    # Both a project and a trust to scope to: keystoneauth refuses before asking Keystone. (A
    # cloud nobody answers is another matter: a stack may exist, the delete asks again.)
    cloud = {**CLOUD, "auth": {**CLOUD["auth"], "trust_id": "t1"}}
    made = api.post(CLUSTERS, json={**OPENSTACK, "cloud": cloud})
    assert made.status_code == 201, made.text
    cluster_id = made.json()["id"]
    failed = wait_until(lambda: (lambda c: c if c["state"] == "failed" else None)(
        api.get(f"{CLUSTERS}/{cluster_id}").json()), timeout=60, what="the create fails")
    assert "cannot log in" in failed["status_reason"], failed["status_reason"]
    # Settings that can never log in never made a stack: the delete completes without one.
    assert api.delete(f"{CLUSTERS}/{cluster_id}").status_code == 202
    wait_until(lambda: api.get(f"{CLUSTERS}/{cluster_id}").json()["state"] == "deleted", timeout=30,
               what="the cluster deleted")


# -- the CLI -----------------------------------------------------------------------------------------

def disco(sm: ServiceManager, token: str, home: Path, *args: str,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("OS_CLOUD", "OS_CLIENT_CONFIG_FILE", "OS_CLIENT_SECURE_FILE", "XDG_CONFIG_HOME")}
    full = {**base, "DISCO_URL": sm.url, "DISCO_TOKEN": token, "HOME": str(home), "COLUMNS": "200",
            "DISCO_DATA_DIR": str(home / "disco-data"), **(env or {})}
    done = subprocess.run([sys.executable, "-m", "disco.cli.main", *args], env=full, cwd=home,
                          capture_output=True, text=True, timeout=120)
    assert PASSWORD not in done.stdout + done.stderr
    return done


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """clouds.yaml without the password, secure.yaml with it, in ~/.config/openstack."""
    folder = tmp_path / ".config" / "openstack"
    folder.mkdir(parents=True)
    public = {**CLOUD, "auth": {k: v for k, v in CLOUD["auth"].items() if k != "password"}}
    (folder / "clouds.yaml").write_text(yaml.safe_dump({"clouds": {"science": public}}))
    (folder / "secure.yaml").write_text(yaml.safe_dump({"clouds": {"science": {"auth": {"password": PASSWORD}}}}))
    return tmp_path


def options() -> list[str]:
    return [arg for key, value in OPTIONS.items() for arg in ("--provider-option", f"{key}={value}")]


def test_cli_cloud_implies_the_openstack_provider(sm: ServiceManager, home: Path) -> None:
    token = sm.token("default")
    done = disco(sm, token, home, "cluster", "plan", "-f", "webecho", "--workers", "1", *options(),
                 "--cloud", "science", "--output", "json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["provider"] == "openstack" and plan["cloud"] == describe_cloud(CLOUD)
    people = disco(sm, token, home, "cluster", "plan", "-f", "webecho", "--workers", "1", *options(),
                   "--cloud", "science")
    assert people.returncode == 0, people.stderr
    assert f"auth_url {MADE_UP_AUTH_URL}" in people.stdout and "username alice" in people.stdout


def test_cli_os_cloud_with_the_openstack_provider(sm: ServiceManager, home: Path) -> None:
    token = sm.token("default")
    done = disco(sm, token, home, "cluster", "plan", "-f", "webecho", "--workers", "1", *options(),
                 "--provider", "openstack", "--output", "json", env={"OS_CLOUD": "science"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cloud"] == describe_cloud(CLOUD)
    missing = disco(sm, token, home, "cluster", "plan", "-f", "webecho", *options(), "--provider", "openstack",
                    "--output", "json")
    assert missing.returncode == 2 and json.loads(missing.stdout)["error"]["code"] == "cloud_missing"


def test_cli_create_with_a_cloud_prints_no_secret(sm: ServiceManager, home: Path) -> None:
    token = sm.token("default")
    for output in ("table", "json"):
        done = disco(sm, token, home, "cluster", "create", "-f", "webecho", "--workers", "1", *options(),
                     "--cloud", "science", "--output", output)
        assert done.returncode == 0, done.stderr
