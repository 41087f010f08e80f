"""The fast path (taskfarm/fastpath.py) answers POST …/work and …/results of a client whose token
the server has seen as the routes do: the first request of a client goes through FastAPI (its
token is not cached yet), the next ones through the fast path, and both give the same answers,
headers and errors. Against a real `disco farm server` on SQLite (the path is the same on
PostgreSQL: test_farm_protocol runs every protocol test on both)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from farm_fixtures import FarmServer
from farm_protocol import ProtoClient, ok, unit_input


@pytest.fixture()
def farm(tmp_path: Path) -> Iterator[FarmServer]:
    server = FarmServer(tmp_path / "farm", f"sqlite:///{tmp_path / 'farm.sqlite'}").start()
    try:
        yield server
    finally:
        server.stop()


def _key(farm: FarmServer) -> str:
    with farm.owner() as owner:
        return str(owner.post("/api/v1/farm/keys", json={}).json()["key"])


def test_no_work_answers_the_same_before_and_after_the_token_is_cached(farm: FarmServer) -> None:
    client = ProtoClient(farm.url, _key(farm), "c")
    try:
        answers = [client.http.post("/work", json={"seconds": 5}) for _ in range(3)]
        for answer in answers:
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["retry-after"] == "10"
            assert answer.json() == {"leases": [], "retry_after_s": 10.0}
    finally:
        client.close()


def test_bad_bodies_and_tokens_get_the_apps_errors(farm: FarmServer) -> None:
    client = ProtoClient(farm.url, _key(farm), "c")
    try:
        assert client.work() == []  # the token is cached from here on
        for path, body in (("/work", {"seconds": -1}), ("/work", {"seconds": "5"}), ("/results", {"results": []}),
                           ("/results", {"results": [{"instance_id": 1}]})):
            answer = client.http.post(path, json=body)
            assert answer.status_code == 422, (path, body, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "invalid_request" and error["details"][0]["loc"][0] == "body"
        answer = client.http.post("/work", content=b"{not json", headers={"content-type": "application/json"})
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request"
        stranger = client.http.post("/work", json={"seconds": 5}, headers={"Authorization": "Bearer fc_nobody"})
        assert stranger.status_code == 401 and stranger.json()["error"]["code"] == "invalid_token"
    finally:
        client.close()


def test_leases_and_reports_through_the_fast_path(farm: FarmServer) -> None:
    key = _key(farm)
    with farm.owner() as owner:
        project = owner.post("/api/v1/farm/projects", json={
            "code": {"kind": "container", "image": "busybox", "command": ["cat"]},
            "input": {"kind": "inline", "text": "a\nb\nc\n"}, "split": {"by": "lines", "size": 1}}).json()["project_id"]
    client = ProtoClient(farm.url, key, "c")
    try:
        first = client.work(seconds=1)  # through the app: the token was not cached yet
        rest = client.work(seconds=5, slots=2)  # through the fast path
        leases = first + rest
        assert len(leases) == 3 and len({lease["unit_id"] for lease in leases}) == 3
        for lease in leases:
            assert lease["input"]["bytes"] == 2 and "url" not in lease["input"]
            assert lease["code"] == {"kind": "container", "image": "busybox", "command": ["cat"]}
        items = [ok(lease, unit_input(lease).upper()) for lease in leases]
        assert [a["status"] for a in client.report(items)] == ["accepted"] * 3
        again = client.report(items)  # a replay: answered the same, nothing done twice
        assert again == [{"instance_id": lease["instance_id"], "status": "duplicate", "first": "accepted"}
                         for lease in leases]
        refused = client.report([{**items[0], "attempt": 7}])
        assert refused == [{"instance_id": leases[0]["instance_id"], "status": "refused",
                            "reason": "not an instance leased to this client"}]
        with farm.owner() as owner:
            results = owner.get(f"/api/v1/farm/projects/{project}/results").json()
        assert sorted(base64.b64decode(r["output"]) for r in results["results"]) == [b"A\n", b"B\n", b"C\n"]
    finally:
        client.close()


def test_the_input_url_follows_the_host_the_client_used(farm: FarmServer) -> None:
    key = _key(farm)
    big = "x" * (70 * 1024)  # over the inline limit: the lease names the unit's input URL
    with farm.owner() as owner:
        owner.post("/api/v1/farm/projects", json={
            "code": {"kind": "container", "image": "busybox", "command": ["cat"]},
            "input": {"kind": "inline", "text": f"{big}\n{big}\n"}, "split": {"by": "lines", "size": 1}}).raise_for_status()
    client = ProtoClient(farm.url.replace("127.0.0.1", "localhost"), key, "c")
    try:
        leases = client.work(seconds=1) + client.work(seconds=1)
        urls = [lease["input"]["url"] for lease in leases]
        assert urls == [f"http://localhost:{farm.port}/api/v1/farm/units/{lease['unit_id']}/input" for lease in leases]
        data = client.http.get(urls[1].split("/api/v1/farm")[1])
        assert data.status_code == 200 and data.content == (big + "\n").encode()
    finally:
        client.close()
    assert httpx.get(f"{farm.url}/api/v1/farm/health", trust_env=False).status_code == 200
