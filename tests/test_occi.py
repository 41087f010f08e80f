"""The original DISCO README's OCCI curl sequence, replayed over HTTP against a real `disco sm`:
query interface, create, list, retrieve (three renderings), suspend/resume, scale, delete."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sm_fixtures import ServiceManager, wait_until
from disco.cluster.api.occi_format import parse_attributes

SM_SCHEME = "http://schemas.cloudcomplab.ch/occi/sm#"
ACTION_SCHEME = "http://schemas.cloudcomplab.ch/occi/sm/action#"
SEED_CATEGORY = 'disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind";'
TENANT = "occi-tenant"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def seed_attribute_header(inject: str, slavecount: int, **extra: str) -> str:
    """The README's one long X-OCCI-Attribute header (curl joins the pieces with bare commas),
    less its OpenStack part (heat images, flavors, networks, deployer credentials), which makes
    an OpenStack cluster (tests/test_occi_openstack.py)."""
    attrs = {
        "icclab.disco.components.heat.slavecount": str(slavecount),
        "icclab.disco.dependencies.inject": inject,
        **extra,
    }
    return ",".join(f'{name}="{value}"' for name, value in attrs.items())


def create_headers(token: str, attribute_header: str) -> dict[str, str]:
    return {
        "Category": SEED_CATEGORY,
        "Content-type": "text/occi",
        "X-Tenant-Name": TENANT,
        "X-Auth-Token": token,
        "X-OCCI-Attribute": attribute_header,
    }


def occi_json(client: httpx.Client, location: str) -> dict[str, Any]:
    response = client.get(location, headers={"Accept": "application/occi+json"})
    assert response.status_code == 200, response.text
    return response.json()


def wait_occi_state(client: httpx.Client, location: str, state: str, timeout: float = 30,
                    check: Any = None) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        attrs = occi_json(client, location)["attributes"]
        assert attrs["mcn.service.state"] != "failed", attrs.get("stack_status_reason")
        return attrs if attrs["mcn.service.state"] == state and (check is None or check(attrs)) else None
    return wait_until(done, timeout=timeout, what=f"{location} {state}")


def worker_uis(attrs: dict[str, Any], framework: str = "webecho") -> list[str]:
    prefix = f"icclab.disco.frameworks.{framework}.ui.worker_web@"
    return sorted(v for k, v in attrs.items() if k.startswith(prefix))


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def all_answer(urls: list[str]) -> bool:
    # webecho declares `readiness: none`, so "ready" means its processes were started,
    # not that http.server has bound its port yet: give them a moment.
    return bool(wait_until(lambda: all(answers(u) for u in urls), timeout=10, what=f"{urls} answer"))


@pytest.fixture(scope="module")
def token(sm: ServiceManager) -> str:
    return sm.token(TENANT)


@pytest.fixture(scope="module")
def occi(sm: ServiceManager, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sm.url, headers={"X-Auth-Token": token, "X-Tenant-Name": TENANT},
                      timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def created(sm: ServiceManager, occi: httpx.Client, token: str) -> Iterator[httpx.Response]:
    """The README's create request, webecho on 2 slaves, with a greeting property."""
    header = seed_attribute_header("{'webecho': ''}", 2, **{"icclab.disco.components.webecho.greeting": "hi"})
    response = httpx.post(f"{sm.url}/disco/", headers=create_headers(token, header), trust_env=False)
    yield response
    if response.status_code == 201:  # leave nothing behind even if a test failed half-way
        occi.delete(response.headers["location"])


@pytest.fixture(scope="module")
def ready(occi: httpx.Client, created: httpx.Response) -> dict[str, Any]:
    assert created.status_code == 201, created.text
    return wait_occi_state(occi, created.headers["location"], "ready")


def test_query_interface_lists_disco_kind(occi: httpx.Client) -> None:
    response = occi.get("/-/", headers={"Accept": "text/occi"})
    assert response.status_code == 200
    categories = response.headers.get_list("category")
    kind = next(c for c in categories if c.startswith("disco;"))
    assert f'scheme="{SM_SCHEME}"' in kind and 'class="kind"' in kind
    assert 'location="/disco/"' in kind
    for name in ("icclab.disco.components.heat.slavecount", "icclab.disco.dependencies.inject",
                 "ssh_private_key{immutable}"):
        assert name in kind
    assert {c.split(";")[0] for c in categories} == {"disco", "suspend", "resume"}
    assert all(f'scheme="{ACTION_SCHEME}"' in c for c in categories if not c.startswith("disco;"))
    # text/plain carries the same lines in the body.
    plain = occi.get("/-/", headers={"Accept": "text/plain"})
    assert [line for line in plain.text.splitlines() if line.startswith("Category: ")] == \
        [f"Category: {c}" for c in categories]


def test_create_answers_201_ok_and_absolute_location(sm: ServiceManager, created: httpx.Response) -> None:
    assert created.status_code == 201, created.text
    assert created.text == "OK"
    assert re.fullmatch(rf"http://127\.0\.0\.1:{sm.port}/disco/{UUID}", created.headers["location"])


def test_collection_lists_the_cluster(occi: httpx.Client, created: httpx.Response) -> None:
    location = created.headers["location"]
    response = occi.get("/disco/", headers={"Accept": "text/occi"})
    assert response.status_code == 200
    assert location in response.headers.get_list("x-occi-location")
    uri_list = occi.get("/disco/", headers={"Accept": "text/uri-list"})
    assert uri_list.headers["content-type"].startswith("text/uri-list")
    assert location in uri_list.text.splitlines()
    plain = occi.get("/disco/", headers={"Accept": "text/plain"})
    assert f"X-OCCI-Location: {location}" in plain.text.splitlines()


def test_retrieve_json_when_ready(occi: httpx.Client, created: httpx.Response, ready: dict[str, Any]) -> None:
    location = created.headers["location"]
    body = occi_json(occi, location)
    cluster_id = location.rsplit("/", 1)[1]
    assert body["kind"] == SM_SCHEME + "disco"
    assert body["mixins"] == [] and body["links"] == []
    assert set(body["actions"]) == {ACTION_SCHEME + "suspend", ACTION_SCHEME + "resume"}
    attrs = body["attributes"]
    assert attrs["occi.core.id"] == cluster_id
    assert attrs["stack_status"] == "CREATE_COMPLETE"
    assert re.fullmatch(r"127\.\d+\.\d+\.\d+", attrs["external_ip"])
    assert attrs["ssh_key_name"] == f"disco_sshkey-{cluster_id}"
    assert attrs["ssh_public_key"].startswith("ssh-ed25519 ")
    assert attrs["ssh_private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert attrs["icclab.disco.components.heat.slavecount"] == 2
    assert attrs["icclab.disco.provider"] == "local"
    # The framework's outputs: its UIs on the master and on each worker, and they answer.
    master_ui = attrs["icclab.disco.frameworks.webecho.ui.web"]
    assert master_ui == attrs["icclab.disco.frameworks.webecho.url"] == f"http://{attrs['external_ip']}:8000/"
    assert len(worker_uis(attrs)) == 2
    assert all_answer([master_ui, *worker_uis(attrs)])


def test_component_property_is_visible(ready: dict[str, Any]) -> None:
    assert ready["icclab.disco.components.webecho.greeting"] == "hi"
    assert ready["icclab.disco.components.webecho.size"] == 1  # the declared default


def test_private_key_matches_rest_endpoint(sm: ServiceManager, token: str, created: httpx.Response,
                                           ready: dict[str, Any]) -> None:
    cluster_id = created.headers["location"].rsplit("/", 1)[1]
    rest = httpx.get(f"{sm.url}/api/v1/clusters/{cluster_id}/ssh-key", headers={"X-Auth-Token": token},
                     trust_env=False)
    assert rest.status_code == 200
    assert rest.text == ready["ssh_private_key"]


def test_retrieve_text_occi_headers(occi: httpx.Client, created: httpx.Response, ready: dict[str, Any]) -> None:
    response = occi.get(created.headers["location"], headers={"Accept": "text/occi"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/occi")
    assert response.headers["category"] == f'disco; scheme="{SM_SCHEME}"; class="kind"'
    lines = response.headers.get_list("x-occi-attribute")
    key_line = next(line for line in lines if line.startswith("ssh_private_key="))
    # One header per attribute; the key's newlines are a literal backslash-n, as in the original.
    assert "\n" not in key_line and "\\n" in key_line
    assert parse_attributes(lines) == {k: str(v) for k, v in occi_json(occi, created.headers["location"])
                                       ["attributes"].items()}
    assert parse_attributes(lines)["ssh_private_key"] == ready["ssh_private_key"]


def test_retrieve_text_plain_body(occi: httpx.Client, created: httpx.Response, ready: dict[str, Any]) -> None:
    response = occi.get(created.headers["location"], headers={"Accept": "text/plain"})
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert lines[0] == f'Category: disco; scheme="{SM_SCHEME}"; class="kind"'
    assert all(line.startswith("X-OCCI-Attribute: ") for line in lines[1:])
    attrs = parse_attributes([line.removeprefix("X-OCCI-Attribute: ") for line in lines[1:]])
    assert attrs["mcn.service.state"] == "ready"
    assert attrs["stack_status"] == "CREATE_COMPLETE"
    assert attrs["external_ip"] == ready["external_ip"]
    assert attrs["ssh_private_key"] == ready["ssh_private_key"]
    assert attrs["icclab.disco.frameworks.webecho.ui.web"] == ready["icclab.disco.frameworks.webecho.ui.web"]
    assert attrs["icclab.disco.components.heat.slavecount"] == "2"


def test_suspend_then_resume(occi: httpx.Client, created: httpx.Response, ready: dict[str, Any]) -> None:
    location = created.headers["location"]
    master_ui = ready["icclab.disco.frameworks.webecho.ui.web"]
    response = occi.post(location, headers={"X-OCCI-Attribute": 'action="suspend"'})
    assert response.status_code == 200 and response.text == "OK"
    attrs = wait_occi_state(occi, location, "suspended")
    assert attrs["stack_status"] == "SUSPEND_COMPLETE" and attrs["runstate"] == "suspended"
    assert not answers(master_ui)  # the processes are really stopped
    # Resume the GFD.185 way (action query and action Category); the seed's attribute way works too.
    response = occi.post(location, params={"action": "resume"},
                         headers={"Category": f'resume; scheme="{ACTION_SCHEME}"; class="action"'})
    assert response.status_code == 200
    attrs = wait_occi_state(occi, location, "ready")
    assert attrs["stack_status"] == "CREATE_COMPLETE"
    assert all_answer([master_ui])


def test_new_slavecount_scales(occi: httpx.Client, created: httpx.Response, ready: dict[str, Any]) -> None:
    location = created.headers["location"]
    response = occi.post(location, headers={"X-OCCI-Attribute": 'icclab.disco.components.heat.slavecount="3"'})
    assert response.status_code == 200
    attrs = wait_occi_state(occi, location, "ready", check=lambda a: len(worker_uis(a)) == 3)
    assert attrs["icclab.disco.components.heat.slavecount"] == 3
    assert all_answer(worker_uis(attrs))
    response = occi.post(location, headers={"X-OCCI-Attribute": "icclab.disco.components.heat.slavecount=1"})
    assert response.status_code == 200
    attrs = wait_occi_state(occi, location, "ready", check=lambda a: len(worker_uis(a)) == 1)
    assert attrs["icclab.disco.components.heat.slavecount"] == 1


def test_delete_removes_the_cluster(sm: ServiceManager, occi: httpx.Client, created: httpx.Response,
                                    ready: dict[str, Any]) -> None:
    location = created.headers["location"]
    cluster_id = location.rsplit("/", 1)[1]
    response = occi.delete(location, headers={"Category": SEED_CATEGORY, "Content-type": "text/occi"})
    assert response.status_code == 200 and response.text == "OK"
    wait_until(lambda: occi.get(location).status_code == 404, timeout=30, what="OCCI 404 after delete")
    gone = occi.get(location, headers={"Accept": "application/occi+json"})
    assert gone.json()["error"]["code"] == "not_found"
    assert location not in occi.get("/disco/", headers={"Accept": "text/occi"}).headers.get_list("x-occi-location")
    assert location not in occi.get("/disco/", headers={"Accept": "text/uri-list"}).text
    assert not (sm.data_dir / "clusters" / cluster_id).exists()
    assert not answers(ready["icclab.disco.frameworks.webecho.ui.web"])
    # Deleting again is a 404 too: the cluster is gone.
    assert occi.delete(location).status_code == 404


def test_text_renderings_survive_any_string(sm: ServiceManager, occi: httpx.Client, token: str) -> None:
    """A property may hold quotes, backslashes and non-ASCII characters (control characters are
    refused: properties reach command lines); text/occi headers must still be valid
    single-line ASCII HTTP headers, and read back the same."""
    refused = httpx.post(f"{sm.url}/api/v1/clusters", headers={"X-Auth-Token": token}, trust_env=False,
                         json={"frameworks": [{"name": "webecho", "properties": {"greeting": "a\rb"}}]})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_property"
    odd = 'ab c d "q" \\ h\u00e9llo \u2192 \U0001f600'
    rest = httpx.post(f"{sm.url}/api/v1/clusters", headers={"X-Auth-Token": token}, trust_env=False,
                      json={"frameworks": [{"name": "webecho", "properties": {"greeting": odd}}], "workers": 0})
    assert rest.status_code == 201, rest.text
    # curl sends UTF-8 bytes in headers; they are read as UTF-8, not Latin-1.
    utf8 = 'icclab.disco.dependencies.inject="{\'webecho\': \'\'}", ' \
           'icclab.disco.components.webecho.greeting="gr\u00fc\u00df \u2192 dich"'
    occi_created = occi.post("/disco/", headers={"Category": SEED_CATEGORY, "X-OCCI-Attribute": utf8.encode()})
    try:
        assert occi_created.status_code == 201, occi_created.text
        for location, expected in ((f"/disco/{rest.json()['id']}", odd),
                                   (occi_created.headers["location"], "gr\u00fc\u00df \u2192 dich")):
            assert occi_json(occi, location)["attributes"]["icclab.disco.components.webecho.greeting"] == expected
            headers = occi.get(location, headers={"Accept": "text/occi"})
            assert headers.status_code == 200
            lines = headers.headers.get_list("x-occi-attribute")
            assert all(0x20 <= ord(ch) < 0x7F for line in lines for ch in line)
            assert parse_attributes(lines)["icclab.disco.components.webecho.greeting"] == expected
            plain = occi.get(location, headers={"Accept": "text/plain"})
            assert parse_attributes([line.removeprefix("X-OCCI-Attribute: ") for line in plain.text.splitlines()[1:]]
                                    )["icclab.disco.components.webecho.greeting"] == expected
    finally:
        for location in (f"/disco/{rest.json()['id']}", occi_created.headers.get("location")):
            if location:
                occi.delete(location)


@pytest.mark.slow
def test_dask_through_occi(sm: ServiceManager, occi: httpx.Client, token: str) -> None:
    header = seed_attribute_header("{'dask': ''}", 1)
    response = httpx.post(f"{sm.url}/disco/", headers=create_headers(token, header), trust_env=False)
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    try:
        attrs = wait_occi_state(occi, location, "ready", timeout=90)
        address = attrs["icclab.disco.frameworks.dask.scheduler_address"]
        # tcp://, or tls:// once the cluster's endpoints are authenticated.
        assert re.fullmatch(rf"(tcp|tls)://{re.escape(attrs['external_ip'])}:8786", address), address
        host, port = address.split("://", 1)[1].split(":")
        with socket.create_connection((host, int(port)), timeout=5):
            pass  # the scheduler really listens there
        assert attrs["icclab.disco.frameworks.dask.ui.dashboard"].startswith(f"http://{attrs['external_ip']}:8787")
    finally:
        assert occi.delete(location).status_code == 200
    wait_until(lambda: occi.get(location).status_code == 404, timeout=60, what="dask cluster deleted")
