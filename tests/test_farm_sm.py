"""The farm mounted on a real service manager: its tenants own projects and keys (another tenant's
project looks missing, its clients get none of the work), its database holds the farm's tables
beside its own, and a URL input on a loopback host the deployment allows is fetched and split."""

from __future__ import annotations

import base64
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect

from farm_protocol import ProtoClient, run_round
from sm_fixtures import ServiceManager

INPUT = b"".join(f'{{"n": {i}}}\n'.encode() for i in range(9))


@pytest.fixture(scope="module")
def input_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(INPUT)))
            self.end_headers()
            self.wfile.write(INPUT)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/input.ndjson"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def sm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceManager]:
    manager = ServiceManager(tmp_path_factory.mktemp("sm-farm"), extra_env={
        "DISCO_FARM_URL_HOSTS": "127.0.0.1", "DISCO_FARM_MIN_LEASE_S": "1"}).start()
    try:
        yield manager
    finally:
        manager.cleanup()


def test_a_tenants_project_from_a_url_runs_and_stays_the_tenants(sm: ServiceManager, input_server: str) -> None:
    with sm.client("tenant-a") as a, sm.client("tenant-b") as b:
        made = a.post("/api/v1/farm/projects", json={
            "code": {"kind": "container", "image": "busybox", "command": ["cat"]},
            "input": {"kind": "url", "url": input_server}, "split": {"by": "records", "size": 4},
            "comparator": {"name": "json"}})
        assert made.status_code == 201, made.text
        project, units = made.json()["project_id"], made.json()["units"]
        assert units == 3
        assert b.get(f"/api/v1/farm/projects/{project}").status_code == 404
        assert b.get("/api/v1/farm/projects").json() == {"projects": []}
        key_a = a.post("/api/v1/farm/keys", json={}).json()["key"]
        key_b = b.post("/api/v1/farm/keys", json={}).json()["key"]
        stranger = ProtoClient(sm.url, key_b, "b-client")
        assert stranger.work(seconds=100) == []
        stranger.close()
        worker = ProtoClient(sm.url, key_a, "a-client")
        try:
            while run_round(worker, lambda data: data):
                pass
        finally:
            worker.close()
        results = a.get(f"/api/v1/farm/projects/{project}/results").json()
        assert results["complete"] and len(results["results"]) == 3
        # Input URLs only on the hosts this deployment allows; no token: 401 in the envelope.
        refused = a.post("/api/v1/farm/projects", json={
            "code": {"kind": "container", "image": "busybox", "command": ["cat"]},
            "input": {"kind": "url", "url": "http://localhost:1/x"}})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "input_host_not_allowed"
    anonymous = httpx.post(f"{sm.url}/api/v1/farm/projects", json={}, trust_env=False)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_token"
    engine = create_engine(f"sqlite:///{Path(sm.data_dir) / 'disco.sqlite'}")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"clusters", "alembic_version", "farm_projects", "farm_alembic_version"} <= tables
    # Once done, the project's output files are on disk and hold what the API answered.
    with sm.client("tenant-a") as a:
        deadline = time.monotonic() + 15
        while a.get(f"/api/v1/farm/projects/{project}").json()["state"] == "open" and time.monotonic() < deadline:
            time.sleep(0.2)
    files = sorted((Path(sm.data_dir) / "farm" / project).glob("*.out"))
    assert b"".join(path.read_bytes() for path in files) == b"".join(
        base64.b64decode(r["output"]) for r in results["results"])
