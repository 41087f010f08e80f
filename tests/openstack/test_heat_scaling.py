"""Scaling against Heat's real engine (in-process, the legacy engine, servers and networks
stood in for by OS::Heat::None): every node added by a scale is waited for, and a removed
node's signal never counts. The flat alternative — one handle whose wait condition's count
follows worker_count — is run beside it and shown to complete a scale-up no new node has
signalled (docs/openstack-template.md). Needs MariaDB on 127.0.0.1:3306 (root, no password);
the engine's pause between a task's steps is shortened to 0.1 s (heat_engine_scaling.py)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from disco.providers.openstack.template import render, render_files
from disco.testbed.cloud.heat_venv import ensure_heat_venv
from openstack_designs import typical_design

pytestmark = [pytest.mark.slow, pytest.mark.timeout(500)]

HERE = Path(__file__).parent
STEPS = [1, 3, 1, 3]

# The shape the brief suggested first: one handle, count = workers + 1, servers flat.
FLAT = {
    "heat_template_version": "2018-08-31",
    "parameters": {"worker_count": {"type": "number", "default": 1}},
    "resources": {
        "ready_handle": {"type": "OS::Heat::WaitConditionHandle"},
        "ready": {"type": "OS::Heat::WaitCondition", "depends_on": ["master", "workers"], "properties": {
            "handle": {"get_resource": "ready_handle"}, "timeout": 600,
            "count": {"yaql": {"expression": "$.data.workers + 1",
                               "data": {"workers": {"get_param": "worker_count"}}}}}},
        "master": {"type": "OS::Nova::Server", "properties": {"image": "i", "flavor": "f"}},
        "workers": {"type": "OS::Heat::ResourceGroup", "properties": {
            "count": {"get_param": "worker_count"},
            "resource_def": {"type": "OS::Nova::Server", "properties": {"image": "i", "flavor": "f"}}}},
    },
}


def _mariadb(python: str, statement: str) -> None:
    subprocess.run([python, "-c", "import pymysql, sys; connection = pymysql.connect(host='127.0.0.1', user='root');"
                    " connection.cursor().execute(sys.argv[1]); connection.close()", statement],
                   check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def runs() -> dict[str, list[dict]]:
    python = str(ensure_heat_venv() / "bin" / "python")
    database = f"disco_hot_scaling_{uuid.uuid4().hex[:10]}"
    design = typical_design()
    spec = {"database": f"mysql+pymysql://root@127.0.0.1/{database}", "plugins": str(HERE / "heat_plugins"),
            "steps": STEPS,
            "stacks": [{"name": "disco", "template": render(design), "files": render_files(design)},
                       {"name": "flat", "template": FLAT, "files": {}}]}
    _mariadb(python, f"CREATE DATABASE {database}")
    try:
        done = subprocess.run([python, "-I", str(HERE / "heat_engine_scaling.py")], input=json.dumps(spec),
                              capture_output=True, text=True, timeout=400)
    finally:
        _mariadb(python, f"DROP DATABASE IF EXISTS {database}")
    assert done.returncode == 0, done.stderr[-3000:]
    return {run["name"]: run["steps"] for run in map(json.loads, done.stdout.splitlines())}


def test_every_added_node_is_waited_for(runs):
    create, up, down, up_again = runs["disco"]
    assert create == {**create, "waiting": "CREATE_IN_PROGRESS", "signals": 2, "final": "CREATE_COMPLETE"}
    assert up == {**up, "waiting": "UPDATE_IN_PROGRESS", "signals": 2, "final": "UPDATE_COMPLETE"}
    assert down == {**down, "signals": 0, "final": "UPDATE_COMPLETE"}
    # The two workers removed by the scale-down had signalled; their signals went with them.
    assert up_again == {**up_again, "waiting": "UPDATE_IN_PROGRESS", "signals": 2, "final": "UPDATE_COMPLETE"}


def test_the_flat_shape_completes_a_scale_up_nobody_signalled(runs):
    create, up, down, up_again = runs["flat"]
    assert create["waiting"] == "CREATE_IN_PROGRESS" and create["final"] == "CREATE_COMPLETE"
    assert up["waiting"] == "UPDATE_IN_PROGRESS" and up["final"] == "UPDATE_COMPLETE"
    assert down["final"] == "UPDATE_COMPLETE"
    # Complete before either new worker said a word: the stale signals were counted.
    assert up_again["waiting"] == "UPDATE_COMPLETE"
