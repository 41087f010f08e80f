"""A cluster of the real service manager, on the local provider, whose framework renders a
configuration file from the node's size, a property and the user's raw overrides: the file
its process reads is the merged one, and the stored spec keeps the overrides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from sm_fixtures import ServiceManager, frameworks_path, wait_state

from disco.frameworks.config_files import parse

# The process serves its own working directory, so the test reads the files it was given.
CONFSHOW = """\
name: confshow
properties:
  greeting: {type: str, default: hello}
  threads: {type: int, min: 1, max: 64, description: "unset: derived from the node's CPUs"}
ports:
  web: {port: 8000, role: master, scheme: http}
derived:
  half_memory_mb: "{{ node.memory_mb // 2 }}"
  threads: "{{ node.cpus }}"
config_files:
  app.properties:
    path: conf/app.properties
    format: properties
    values:
      app.fixed: "1"
      app.memory_mb: "{{ derived.half_memory_mb }}"
      app.threads: "{{ props.threads if props.threads is not none else derived.threads }}"
      app.greeting: "{{ props.greeting }}"
      app.bind: "{{ node.host }}"
    locked: [app.bind]
roles:
  master:
    processes:
      - name: web
        command: ["{{ python }}", "-m", "http.server", "{{ ports.web }}", "--bind", "{{ node.host }}"]
readiness:
  kind: http
  url: "http://{{ master.host }}:{{ ports.web }}/"
  timeout_s: 20
"""


@pytest.fixture(scope="module")
def sm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceManager]:
    folder = tmp_path_factory.mktemp("confshow")
    manager = ServiceManager(folder / "data", extra_env={
        "DISCO_FRAMEWORKS_PATH": frameworks_path(folder, {"confshow": CONFSHOW})}).start()
    try:
        yield manager
    finally:
        manager.cleanup()


def test_the_node_reads_its_file_with_each_level_in_place(sm: ServiceManager) -> None:
    with sm.client("default") as api:
        answer = api.post("/api/v1/clusters", json={"workers": 0, "frameworks": [{
            "name": "confshow", "properties": {"greeting": "hi", "threads": 3},
            "overrides": {"app.properties": {"app.greeting": "bonjour", "app.extra": 7}}}]})
        assert answer.status_code == 201, answer.text
        cluster_id = answer.json()["id"]
        cluster = wait_state(api, cluster_id, {"ready", "failed"}, timeout=60)
        assert cluster["state"] == "ready", cluster.get("status_reason")
        assert cluster["spec"]["frameworks"][0]["overrides"] == {
            "app.properties": {"app.greeting": "bonjour", "app.extra": "7"}}
        master = cluster["outputs"]["master_host"]
        text = httpx.get(f"http://{master}:8000/conf/app.properties", trust_env=False, timeout=10).text
        assert api.delete(f"/api/v1/clusters/{cluster_id}").status_code == 202
    values = parse("properties", text)
    # The local provider's share of this machine for a cluster of one node: all of it.
    assert values == {"app.fixed": "1",                                           # framework default
                      "app.memory_mb": str(psutil.virtual_memory().total // (1 << 20) // 2),  # derived
                      "app.threads": "3",                                         # property over derived
                      "app.greeting": "bonjour",                                  # override over property
                      "app.bind": master, "app.extra": "7"}
    assert list(values)[-1] == "app.extra"


def test_a_locked_key_is_refused_and_nothing_is_stored(sm: ServiceManager) -> None:
    with sm.client("default") as api:
        before = {c["id"] for c in api.get("/api/v1/clusters").json()}
        answer = api.post("/api/v1/clusters", json={"workers": 0, "frameworks": [{
            "name": "confshow", "overrides": {"app.properties": {"app.bind": "0.0.0.0"}}}]})
        assert answer.status_code == 422
        assert answer.json()["error"]["code"] == "invalid_override"
        assert answer.json()["error"]["details"] == {"framework": "confshow", "file": "app.properties",
                                                     "key": "app.bind", "locked": True}
        assert {c["id"] for c in api.get("/api/v1/clusters").json()} <= before
