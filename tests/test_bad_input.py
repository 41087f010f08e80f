"""Every bad request gets a clear 4xx with a machine-readable JSON error, and leaves nothing
behind: no cluster row, no cluster directory, no change to an existing cluster."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sm_fixtures import ServiceManager, wait_state

SM_CATEGORY = 'disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind";'
TENANT = "bad-input"
SLAVECOUNT = "icclab.disco.components.heat.slavecount"
MIB = 1 << 20


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    if code is not None:
        assert error["code"] == code, error
    return error


def stored_cluster_ids(sm: ServiceManager) -> set[str]:
    store = sm.store()
    try:
        return {c.id for c in store.list_clusters(include_deleted=True)}
    finally:
        store.close()


def cluster_dirs(sm: ServiceManager) -> set[str]:
    root = sm.data_dir / "clusters"
    return {p.name for p in root.iterdir()} if root.exists() else set()


@pytest.fixture()
def nothing_persisted(sm: ServiceManager, client: httpx.Client) -> Iterator[None]:
    """Wraps a test that sends a bad create: afterwards nothing new may exist anywhere."""
    ids, dirs = stored_cluster_ids(sm), cluster_dirs(sm)
    yield
    assert client.get("/api/v1/clusters").json() == []
    assert stored_cluster_ids(sm) == ids
    assert cluster_dirs(sm) == dirs


@pytest.fixture(scope="module")
def token(sm: ServiceManager) -> str:
    return sm.token(TENANT)


@pytest.fixture(scope="module")
def client(sm: ServiceManager, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sm.url, headers={"X-Auth-Token": token, "X-Tenant-Name": TENANT},
                      timeout=30, trust_env=False) as c:
        yield c


# -- REST create -------------------------------------------------------------------------------

def webecho(**props: Any) -> dict[str, Any]:
    return {"frameworks": [{"name": "webecho", "properties": props}], "workers": 0}


def hadoop_override(file_name: str, values: Any) -> dict[str, Any]:
    return {"frameworks": [{"name": "hadoop", "overrides": {file_name: values}}], "workers": 1}


@pytest.mark.parametrize(("body", "code"), [
    ({"frameworks": [{"name": "nosuchfw"}]}, "unknown_framework"),
    ({"frameworks": ["webecho", "webecho"]}, "duplicate_framework"),
    ({"frameworks": [{"name": ""}]}, "invalid_spec"),
    (webecho(colour="red"), "unknown_property"),
    (webecho(size=11), "invalid_property"),       # max 10
    (webecho(size=0), "invalid_property"),        # min 1
    (webecho(size="big"), "invalid_property"),
    (webecho(size=2.5), "invalid_property"),
    (webecho(size=True), "invalid_property"),
    (webecho(greeting=["a", "list"]), "invalid_property"),
    # Raw overrides of configuration files: a file the framework does not render, a key that
    # keeps the cluster closed, a value that would start another setting, a value no file holds.
    ({"frameworks": [{"name": "webecho", "overrides": {"app.conf": {"a": "1"}}}]}, "invalid_override"),
    (hadoop_override("hbase-site.xml", {"hbase.rootdir": "/x"}), "invalid_override"),
    (hadoop_override("core-site.xml", {"fs.defaultFS": "file:///"}), "invalid_override"),
    (hadoop_override("hdfs-site.xml", {"dfs.blocksize": "1\n<property>"}), "invalid_override"),
    (hadoop_override("hdfs-site.xml", {"dfs.blocksize": {"nested": 1}}), "invalid_override"),
    (hadoop_override("hdfs-site.xml", {"not a key": "1"}), "invalid_override"),
    ({"frameworks": [{"name": "spark", "overrides": {"spark-daemons.conf": {"spark.authenticate": False}}}]},
     "invalid_override"),
    (hadoop_override("hdfs-site.xml", "dfs.blocksize=1"), "invalid_spec"),
    ({"workers": -1}, "invalid_spec"),
    ({"workers": 2.5}, "invalid_spec"),
    ({"workers": "abc"}, "invalid_spec"),
    ({"workers": "2"}, "invalid_spec"),
    ({"workers": True}, "invalid_spec"),
    ({"workers": None}, "invalid_spec"),
    ({"workers": 65}, "too_many_workers"),        # DISCO_MAX_WORKERS defaults to 64
    ({"workers": 10**30}, "too_many_workers"),
    ({"masters": 2}, "masters_not_supported"),  # no framework here runs several
    ({"masters": 0}, "invalid_spec"),
    ({"wrokers": 2}, "invalid_spec"),             # unknown field (a typo)
    ({"name": "../../etc"}, "invalid_spec"),
    ({"provider": "nosuchprovider"}, "unknown_provider"),
    ({"access": {"allowed_cidrs": ["not-a-cidr"]}}, "invalid_spec"),
    ([1, 2], "invalid_spec"),
    (None, "invalid_spec"),
])
def test_rest_create_rejects(client: httpx.Client, nothing_persisted: None, body: Any, code: str) -> None:
    error = assert_error(client.post("/api/v1/clusters", json=body), 422, code)
    if code == "too_many_workers":
        assert error["details"] == {"max_workers": 64}
    if code == "invalid_override":  # the error names what to fix
        assert {"framework", "file"} <= set(error["details"]), error


@pytest.mark.parametrize("raw", [b'{"workers": ', b"{'workers': 1}", b"\xff\xfe", b"workers=1"])
def test_rest_create_rejects_invalid_json(client: httpx.Client, nothing_persisted: None, raw: bytes) -> None:
    response = client.post("/api/v1/clusters", content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 422, "invalid_json")


def test_oversized_body_is_413(client: httpx.Client, nothing_persisted: None) -> None:
    big = json.dumps({"workers": 1, "name": "x" * MIB}).encode()
    assert_error(client.post("/api/v1/clusters", content=big,
                             headers={"Content-Type": "application/json"}), 413, "body_too_large")
    # Without a Content-Length (chunked), the limit holds while reading.
    assert_error(client.post("/api/v1/clusters", content=iter([b" " * 65536] * 17),
                             headers={"Content-Type": "application/json"}), 413, "body_too_large")
    assert_error(client.post("/disco/", content=b"x" * (MIB + 1),
                             headers={"Category": SM_CATEGORY}), 413, "body_too_large")


# -- OCCI create -------------------------------------------------------------------------------

def inject(value: str) -> str:
    return f'icclab.disco.dependencies.inject="{value}"'


@pytest.mark.parametrize(("category", "attributes", "status", "code"), [
    (None, [], 400, "missing_category"),
    ('scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind"', [], 400, "malformed_occi"),
    ('disco; scheme="http://example.com/occi#"; class="kind"', [], 400, "unknown_kind"),
    ('hadoop; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind"', [], 400, "unknown_kind"),
    ('disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="mixin"', [], 400, "unknown_kind"),
    ('disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#; class="kind"', [], 400, "malformed_occi"),
    ("disco; scheme", [], 400, "malformed_occi"),
    (SM_CATEGORY, [f'{SLAVECOUNT}="2'], 400, "malformed_occi"),              # unterminated quote
    (SM_CATEGORY, [SLAVECOUNT], 400, "malformed_occi"),                       # no '='
    (SM_CATEGORY, ['icclab.disco.components.webecho.greeting=hi'], 400, "malformed_occi"),  # unquoted
    (SM_CATEGORY, [f'{SLAVECOUNT}="1" {inject("{}")}'], 400, "malformed_occi"),  # no comma
    (SM_CATEGORY, ["%%% garbage %%%"], 400, "malformed_occi"),
    (SM_CATEGORY, [f'{SLAVECOUNT}="1"', f'{SLAVECOUNT}="2"'], 400, "malformed_occi"),  # twice
    (SM_CATEGORY, ['icclab.disco.bogus="1"'], 422, "unknown_attribute"),
    (SM_CATEGORY, ['icclab.disco.components.heat.colour="red"'], 422, "unknown_attribute"),
    (SM_CATEGORY, ['action="suspend"'], 422, "unknown_attribute"),
    (SM_CATEGORY, [inject("{'nosuchfw': ''}")], 422, "unknown_framework"),
    (SM_CATEGORY, ['icclab.disco.components.nosuchfw.x="1"'], 422, "unknown_framework"),
    (SM_CATEGORY, ['icclab.disco.components.webecho.colour="red"'], 422, "unknown_property"),
    (SM_CATEGORY, ['icclab.disco.components.webecho.size="11"'], 422, "invalid_property"),
    (SM_CATEGORY, ['icclab.disco.components.webecho.size="big"'], 422, "invalid_property"),
    (SM_CATEGORY, [f'{SLAVECOUNT}="-1"'], 422, "invalid_spec"),
    (SM_CATEGORY, [f'{SLAVECOUNT}="2.5"'], 422, "invalid_attribute"),
    (SM_CATEGORY, [f'{SLAVECOUNT}="abc"'], 422, "invalid_attribute"),
    (SM_CATEGORY, [f'{SLAVECOUNT}="true"'], 422, "invalid_attribute"),
    (SM_CATEGORY, [f'{SLAVECOUNT}="1_0"'], 422, "invalid_attribute"),
    (SM_CATEGORY, [f'{SLAVECOUNT}="65"'], 422, "too_many_workers"),
    (SM_CATEGORY, [inject("__import__('os').system('id')")], 422, "invalid_inject"),
    (SM_CATEGORY, [inject("{'webecho'}")], 422, "invalid_inject"),
    (SM_CATEGORY, [inject("['webecho']")], 422, "invalid_inject"),
    (SM_CATEGORY, [inject("{'webecho': {'size': '2'}}")], 422, "invalid_inject"),
])
def test_occi_create_rejects(client: httpx.Client, nothing_persisted: None, category: str | None,
                             attributes: list[str], status: int, code: str) -> None:
    headers = [("Content-Type", "text/occi")] + [("X-OCCI-Attribute", a) for a in attributes]
    if category is not None:
        headers.append(("Category", category))
    assert_error(client.post("/disco/", headers=headers), status, code)


def test_unsafe_inject_through_occi_is_not_executed(client: httpx.Client, nothing_persisted: None,
                                                    tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path('{marker}').touch()"
    response = client.post("/disco/", headers={"Category": SM_CATEGORY, "X-OCCI-Attribute": inject(payload)})
    assert_error(response, 422, "invalid_inject")
    assert not marker.exists()


# -- changes to an existing cluster ------------------------------------------------------------

@pytest.fixture(scope="module")
def existing(sm: ServiceManager) -> Iterator[dict[str, Any]]:
    """A ready webecho cluster of another tenant, which bad updates must leave as it is."""
    with sm.client("bad-input-owner") as owner:
        response = owner.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 0})
        assert response.status_code == 201, response.text
        cluster = wait_state(owner, response.json()["id"], {"ready"}, timeout=30)
        yield {"id": cluster["id"], "token": owner.headers["x-auth-token"]}
        owner.delete(f"/api/v1/clusters/{cluster['id']}")


@pytest.fixture()
def owner(sm: ServiceManager, existing: dict[str, Any]) -> Iterator[httpx.Client]:
    headers = {"X-Auth-Token": existing["token"], "X-Tenant-Name": "bad-input-owner"}
    with httpx.Client(base_url=sm.url, headers=headers, timeout=30, trust_env=False) as c:
        before = c.get(f"/api/v1/clusters/{existing['id']}").json()
        yield c
        after = c.get(f"/api/v1/clusters/{existing['id']}").json()
        # Nothing about the cluster changed: no state, worker count, node or event.
        for key in ("state", "target", "workers", "nodes"):
            assert after[key] == before[key], key
        assert [e["id"] for e in after["events"]] == [e["id"] for e in before["events"]]


@pytest.mark.parametrize("body", [
    {"workers": -1}, {"workers": 2.5}, {"workers": "abc"}, {"workers": "1"}, {"workers": True},
    {"workers": None}, {"workers": [1]}, {"workers": 65}, {}, {"workers": 1, "masters": 1}, [1], None,
])
def test_patch_rejects_bad_workers(owner: httpx.Client, existing: dict[str, Any], body: Any) -> None:
    response = owner.patch(f"/api/v1/clusters/{existing['id']}", json=body)
    assert_error(response, 422)


def test_patch_rejects_invalid_json(owner: httpx.Client, existing: dict[str, Any]) -> None:
    response = owner.patch(f"/api/v1/clusters/{existing['id']}", content=b'{"workers": 2',
                           headers={"Content-Type": "application/json"})
    assert_error(response, 422, "invalid_json")


@pytest.mark.parametrize(("attributes", "params", "status", "code"), [
    ([f'{SLAVECOUNT}="abc"'], {}, 422, "invalid_attribute"),
    ([f'{SLAVECOUNT}="2.5"'], {}, 422, "invalid_attribute"),
    ([f'{SLAVECOUNT}="-1"'], {}, 422, "invalid_workers"),
    ([f'{SLAVECOUNT}="65"'], {}, 422, "invalid_workers"),
    (['icclab.disco.components.heat.masterimage="other"'], {}, 422, "immutable_attribute"),
    (['action="reboot"'], {}, 400, "unknown_action"),
    ([], {"action": "reboot"}, 400, "unknown_action"),
    (['action="suspend"'], {"action": "resume"}, 400, "unknown_action"),       # two different actions
    ([], {}, 400, "malformed_occi"),                                           # nothing to do
    (['action="suspend"', f'{SLAVECOUNT}="1"'], {}, 400, "ambiguous_update"),
    # A valid action next to a bad attribute must not be half-applied.
    (['action="suspend", icclab.disco.bogus="1"'], {}, 422, "immutable_attribute"),
    (['action="suspend'], {}, 400, "malformed_occi"),
])
def test_occi_update_rejects(owner: httpx.Client, existing: dict[str, Any], attributes: list[str],
                             params: dict[str, str], status: int, code: str) -> None:
    headers = [("X-OCCI-Attribute", a) for a in attributes]
    assert_error(owner.post(f"/disco/{existing['id']}", headers=headers, params=params), status, code)


# -- unknown clusters --------------------------------------------------------------------------

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("GET", f"/api/v1/clusters/{UNKNOWN}", {}),
    ("PATCH", f"/api/v1/clusters/{UNKNOWN}", {"json": {"workers": 1}}),
    ("DELETE", f"/api/v1/clusters/{UNKNOWN}", {}),
    ("GET", f"/api/v1/clusters/{UNKNOWN}/ssh-key", {}),
    ("GET", f"/api/v1/clusters/{UNKNOWN}/events", {}),
    ("GET", f"/api/v1/clusters/{UNKNOWN}/deployment.log", {}),
    ("POST", f"/api/v1/clusters/{UNKNOWN}/actions/suspend", {}),
    ("GET", "/api/v1/clusters/not-a-uuid", {}),
    ("GET", f"/disco/{UNKNOWN}", {}),
    ("GET", f"/disco/{UNKNOWN}", {"headers": {"Accept": "text/occi"}}),
    ("POST", f"/disco/{UNKNOWN}", {"headers": {"X-OCCI-Attribute": 'action="suspend"'}}),
    ("POST", f"/disco/{UNKNOWN}", {"headers": {"X-OCCI-Attribute": f'{SLAVECOUNT}="2"'}}),
    ("DELETE", f"/disco/{UNKNOWN}", {}),
])
def test_unknown_cluster_is_404(client: httpx.Client, nothing_persisted: None, method: str, path: str,
                                kwargs: dict[str, Any]) -> None:
    assert_error(client.request(method, path, **kwargs), 404, "not_found")


# -- a configured worker maximum ---------------------------------------------------------------

@pytest.fixture(scope="module")
def small_sm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceManager]:
    manager = ServiceManager(tmp_path_factory.mktemp("disco-small"), extra_env={"DISCO_MAX_WORKERS": "3"})
    try:
        yield manager.start()
    finally:
        manager.cleanup()


def test_configured_max_workers(small_sm: ServiceManager) -> None:
    with small_sm.client(TENANT) as c:
        error = assert_error(c.post("/api/v1/clusters", json={"workers": 4}), 422, "too_many_workers")
        assert error["details"] == {"max_workers": 3}
        response = c.post("/disco/", headers={"Category": SM_CATEGORY, "X-Tenant-Name": TENANT,
                                              "X-OCCI-Attribute": f'{SLAVECOUNT}="4"'})
        assert_error(response, 422, "too_many_workers")
        assert c.get("/api/v1/clusters").json() == []
        assert stored_cluster_ids(small_sm) == set() and cluster_dirs(small_sm) == set()


# -- bounded requests: every route, every transfer encoding ------------------------------------

def raw_request(sm: ServiceManager, head: bytes, body_chunks: Iterator[bytes] = iter(())) -> tuple[bytes, int]:
    """Sends a request byte for byte (what httpx would refuse to send) while reading the answer
    at the same time: the answer to a refused body comes before the server stops reading.
    Returns the raw answer and how many body bytes could be sent before the server hung up."""
    sent = 0
    with socket.create_connection(("127.0.0.1", sm.port), timeout=30) as sock:
        sock.sendall(head)

        def send_body() -> None:
            nonlocal sent
            try:
                for chunk in body_chunks:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:   # the server answered and closed: exactly what is wanted
                pass

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or len(answer) < _answer_length(answer):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
        sender.join(30)
        assert not sender.is_alive(), "the server kept reading a body it had refused"
    return answer, sent


def _answer_length(answer: bytes) -> int:
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return 1 << 62


def answer_error(answer: bytes, status: int) -> dict[str, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode(), answer[:300]
    return json.loads(body)["error"]


def chunked(total: int, size: int = 65536) -> Iterator[bytes]:
    piece = b"x" * size
    for _ in range(total // size):
        yield b"%x\r\n%s\r\n" % (size, piece)
    yield b"0\r\n\r\n"


@pytest.mark.parametrize(("method", "path", "extra"), [
    ("POST", "/disco/", f"Category: {SM_CATEGORY}\r\nX-OCCI-Attribute: {SLAVECOUNT}=0\r\n"),
    ("POST", "/api/v1/clusters", "Content-Type: application/json\r\n"),
    ("GET", "/disco/", ""),                   # a route that reads no body at all
    ("GET", "/api/v1/health", ""),            # ... and one that needs no token
])
def test_chunked_20_mb_body_is_413_before_it_is_read(sm: ServiceManager, token: str, nothing_persisted: None,
                                                     method: str, path: str, extra: str) -> None:
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {token}\r\n"
            f"X-Tenant-Name: {TENANT}\r\nTransfer-Encoding: chunked\r\n{extra}\r\n").encode()
    answer, sent = raw_request(sm, head, chunked(20 * MIB))
    error = answer_error(answer, 413)
    assert error["code"] == "body_too_large" and error["details"] == {"max_bytes": MIB}
    # The server stopped reading soon after the limit: most of the 20 MB never left the client.
    assert sent < 12 * MIB, sent


def test_declared_oversized_body_is_413_without_reading_it(sm: ServiceManager, token: str,
                                                          nothing_persisted: None) -> None:
    head = (f"POST /disco/ HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\nX-Tenant-Name: {TENANT}\r\n"
            f"Category: {SM_CATEGORY}\r\nContent-Length: {20 * MIB}\r\n\r\n").encode()
    answer, _ = raw_request(sm, head)   # no body sent at all: the answer comes anyway
    assert answer_error(answer, 413)["code"] == "body_too_large"


def test_body_just_under_the_limit_still_works(client: httpx.Client) -> None:
    # A route that reads no body is not bothered by one within the limit.
    response = client.request("GET", "/disco/", content=iter([b"x" * (MIB - 1)]))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/disco/", "/api/v1/clusters", "/api/v1/health", "/-/", "/no/such/route"])
def test_oversized_header_is_431_on_every_route(client: httpx.Client, nothing_persisted: None, path: str) -> None:
    error = assert_error(client.get(path, headers={"X-Padding": "x" * 70_000}), 431, "headers_too_large")
    assert error["details"] == {"header": "x-padding", "max_bytes": 65_536}


def test_70_kb_category_is_431(client: httpx.Client, nothing_persisted: None) -> None:
    category = SM_CATEGORY + ' title="' + "x" * 70_000 + '"'
    error = assert_error(client.post("/disco/", headers={"Category": category}), 431, "headers_too_large")
    assert error["details"]["header"] == "category"


def test_headers_too_large_together_are_431(client: httpx.Client, nothing_persisted: None) -> None:
    headers = [("X-OCCI-Attribute", f'icclab.disco.name="{"n" * 60_000}"')] * 5
    assert_error(client.post("/disco/", headers=[("Category", SM_CATEGORY), *headers]), 431, "headers_too_large")


def test_header_just_under_the_limit_reaches_the_route(client: httpx.Client, nothing_persisted: None) -> None:
    value = "x" * (65_536 - len("x-padding") - 1)
    assert client.get("/disco/", headers={"X-Padding": value}).status_code == 200


def test_overlong_url_is_414(sm: ServiceManager, token: str, nothing_persisted: None) -> None:
    # httpx will not send a URL this long.
    head = f"GET /api/v1/clusters?q={'x' * 70_000} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n\r\n"
    answer, _ = raw_request(sm, head.encode())
    assert answer_error(answer, 414)["code"] == "uri_too_long"


# -- malformed or ambiguous OCCI -----------------------------------------------------------------

KIND_2 = 'disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind"'


@pytest.mark.parametrize(("headers", "status", "code", "named"), [
    ([("Category", SM_CATEGORY), ("Category", SM_CATEGORY)], 400, "multiple_categories", "2 categories"),
    ([("Category", f"{KIND_2}, {KIND_2}")], 400, "multiple_categories", "2 categories"),
    ([("Category", f'{KIND_2}, hadoop; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind"')],
     400, "multiple_categories", "hadoop"),
    ([("Category", f"{KIND_2},")], 400, "empty_category", "empty Category"),
    ([("Category", f'{KIND_2}; class="kind"')], 400, "malformed_occi", "given twice"),
    ([("Category", SM_CATEGORY), ("X-OCCI-Attribute", ",,,,")], 400, "empty_attribute", "empty attribute"),
    ([("Category", SM_CATEGORY), ("X-OCCI-Attribute", f'{SLAVECOUNT}="0",,')], 400, "empty_attribute",
     "empty attribute"),
    ([("Category", SM_CATEGORY), ("X-OCCI-Attribute", "")], 400, "empty_attribute", "empty attribute"),
    ([("Category", SM_CATEGORY), ("X-OCCI-Attribute", 'icclab.disco.name="a\\u0000b"')], 400,
     "control_character", "U+0000"),
    ([("Category", SM_CATEGORY), ("X-OCCI-Attribute", 'icclab.disco.components.heat.masterimage="\\u001b[2J"')],
     400, "control_character", "U+001B"),
    ([("Category", SM_CATEGORY), ("X-OCCI-Attribute", inject("{'webecho': '', 'webecho': ''}"))], 422,
     "invalid_inject", "twice"),
    ([("Category", SM_CATEGORY), ("X-OCCI-Attribute", inject("{'web\\\\x00echo': ''}"))], 422,
     "invalid_inject", "control character"),
    ([("Category", SM_CATEGORY), ("X-OCCI-Attribute", inject("-" * 2969 + "1"))], 422, "invalid_inject", "dict"),
    ([("Category", SM_CATEGORY), ("X-OCCI-Attribute", inject("~" * 4000 + "{}"))], 422, "invalid_inject", "dict"),
    ([("Category", SM_CATEGORY), ("X-OCCI-Attribute", inject("(" * 4000))], 422, "invalid_inject", "dict"),
    ([("Category", SM_CATEGORY), ("X-OCCI-Attribute", inject("{'a': " * 500 + "''" + "}" * 500))], 422,
     "invalid_inject", "dict"),
])
def test_ambiguous_or_malformed_occi_create_is_refused(client: httpx.Client, nothing_persisted: None,
                                                      headers: list[tuple[str, str]], status: int, code: str,
                                                      named: str) -> None:
    error = assert_error(client.post("/disco/", headers=headers), status, code)
    assert named in error["message"], error


@pytest.mark.parametrize("value", [b"a\x00b", b"a\x1bb", b"a\x7fb"])
def test_raw_control_character_in_a_header_is_refused(sm: ServiceManager, token: str, nothing_persisted: None,
                                                      value: bytes) -> None:
    # httpx will not send such a header; the HTTP server refuses it before any route (400).
    head = (f"POST /disco/ HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\nX-Tenant-Name: {TENANT}\r\n"
            f"Category: {SM_CATEGORY}\r\n").encode() + b'X-OCCI-Attribute: icclab.disco.name="' + value + \
        b'"\r\nContent-Length: 0\r\n\r\n'
    answer, _ = raw_request(sm, head)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]


@pytest.mark.parametrize(("headers", "code"), [
    ([("Category", 'suspend; scheme="http://schemas.cloudcomplab.ch/occi/sm/action#"; class="action"'),
      ("Category", 'resume; scheme="http://schemas.cloudcomplab.ch/occi/sm/action#"; class="action"')],
     "multiple_categories"),
    ([("Category", 'suspend; scheme="http://schemas.cloudcomplab.ch/occi/sm/action#"; class="action", '
                   'suspend; scheme="http://schemas.cloudcomplab.ch/occi/sm/action#"; class="action"')],
     "multiple_categories"),
    ([("Category", 'suspend; scheme="http://example.com/action#"; class="action"')], "unknown_action"),
    ([("X-OCCI-Attribute", ",,,,")], "empty_attribute"),
    ([("X-OCCI-Attribute", 'action="sus\\u0000pend"')], "control_character"),
])
def test_ambiguous_occi_update_is_refused(owner: httpx.Client, existing: dict[str, Any],
                                          headers: list[tuple[str, str]], code: str) -> None:
    assert_error(owner.post(f"/disco/{existing['id']}", headers=headers), 400, code)
