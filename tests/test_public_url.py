"""Every URL the service manager hands out starts with its configured public URL
(DISCO_PUBLIC_URL, by default the address `disco sm` listens on), whatever Host header
the client sent."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sm_fixtures import ServiceManager, free_port, wait_state

SM_CATEGORY = 'disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind";'
TENANT = "public-url"
# Never contacted: it only has to come back in the answers' URLs.
PUBLIC = "https://disco.example.test/sm"
FORGED_HOST = "attacker.example.test:666"


def every_url(sm: ServiceManager, client: httpx.Client) -> list[str]:
    """Create a cluster through REST and through OCCI, and collect each URL the answers carry."""
    urls = []
    rest = client.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 0})
    assert rest.status_code == 201, rest.text
    urls.append(rest.headers["location"])
    occi = client.post("/disco/", headers={"Category": SM_CATEGORY})
    assert occi.status_code == 201, occi.text
    urls += [occi.headers["location"], occi.headers["x-occi-location"]]
    cluster_id = rest.json()["id"]
    wait_state(client, cluster_id, {"ready"}, timeout=30)
    urls += [entry["url"] for entry in client.get(f"/api/v1/clusters/{cluster_id}/logs").json()]
    urls += client.get("/disco/", headers={"Accept": "application/occi+json"}).json()["locations"]
    urls += client.get("/disco/", headers={"Accept": "text/uri-list"}).text.split()
    attrs = client.get(f"/disco/{cluster_id}", headers={"Accept": "application/occi+json"}).json()["attributes"]
    urls.append(attrs["icclab.disco.deployment_log"])
    return urls


def forging_client(sm: ServiceManager) -> httpx.Client:
    return httpx.Client(base_url=sm.url, timeout=30, trust_env=False,
                        headers={"X-Auth-Token": sm.token(TENANT), "X-Tenant-Name": TENANT, "Host": FORGED_HOST})


def test_urls_come_from_the_listening_address_not_the_host_header(sm: ServiceManager) -> None:
    with forging_client(sm) as client:
        urls = every_url(sm, client)
    assert len(urls) >= 8
    for url in urls:
        assert url.startswith(f"{sm.url}/"), url
        assert "attacker" not in url


@pytest.fixture(scope="module")
def public_sm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceManager]:
    manager = ServiceManager(tmp_path_factory.mktemp("disco-public"), extra_env={"DISCO_PUBLIC_URL": PUBLIC + "/"})
    try:
        yield manager.start()
    finally:
        manager.cleanup()


def test_urls_come_from_disco_public_url(public_sm: ServiceManager) -> None:
    with forging_client(public_sm) as client:
        urls = every_url(public_sm, client)
        created = client.post("/disco/", headers={"Category": SM_CATEGORY})
    uuid = r"[0-9a-f-]{36}"
    assert re.fullmatch(rf"{re.escape(PUBLIC)}/disco/{uuid}", created.headers["location"])
    for url in urls:
        assert url.startswith(f"{PUBLIC}/"), url   # the trailing slash of the setting is not doubled


@pytest.mark.parametrize("bad", ["ftp://example.test", "example.test:8888", "http://user:pw@example.test",
                                 "http://example.test/?q=1", "http://example.test:99999"])
def test_a_bad_public_url_stops_the_start_with_a_message(tmp_path: Path, bad: str) -> None:
    manager = ServiceManager(tmp_path, extra_env={"DISCO_PUBLIC_URL": bad})
    result = subprocess.run([sys.executable, "-m", "disco.cli.main", "sm", "--port", str(free_port())],
                            env=manager.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "DISCO_PUBLIC_URL" in result.stderr
    assert "user:pw" not in result.stderr   # a password in the URL is not echoed
