"""`disco recommend` as users type it, against a real service manager: the recommendation for
people and as JSON, `--create` making a real (small, fast) Dask cluster on the local provider,
and bad options refused with exit code 2 and a message."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sm_fixtures import ServiceManager, cluster_processes, free_port, wait_state


@pytest.fixture(scope="module")
def token(sm: ServiceManager) -> str:
    return sm.token("recommend-cli")


def disco(sm: ServiceManager, token: str, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DISCO_URL": url or sm.url, "DISCO_TOKEN": token, "COLUMNS": "200",
           "DISCO_DATA_DIR": str(sm.data_dir / "cli-home"), "XDG_CONFIG_HOME": str(sm.data_dir / "cli-config")}
    return subprocess.run([sys.executable, "-m", "disco.cli.main", "recommend", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_recommendation_for_people(sm: ServiceManager, token: str) -> None:
    shown = disco(sm, token, "--work", "sql-etl", "--work", "notebooks", "--data-size", "50GB",
                  "--latency", "interactive", "--max-nodes", "4", "--provider", "local")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "Recommended: Spark, JupyterLab on local, 3 workers + 1 master" in out
    assert "java (dependency)" in out and "Spark SQL" in out
    assert "Alternatives" in out and "no SQL engine" in out  # Dask, and why it lost
    assert "disco cluster create --provider local --workers 3 -f spark -f jupyter" in out
    assert f"{sm.url}/ui/clusters/new?provider=local&workers=3&frameworks=spark&frameworks=jupyter" in out


def test_the_recommendation_as_json_is_the_apis(sm: ServiceManager, token: str) -> None:
    shown = disco(sm, token, "--work", "streaming", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    rec = json.loads(shown.stdout)
    assert rec["spec"]["frameworks"] == [{"name": "spark"}]
    assert any("no message broker" in w for w in rec["warnings"])
    assert rec["answers"]["providers"] == ["local"]  # the questionnaire's default


def test_create_makes_the_recommended_dask_cluster(sm: ServiceManager, token: str) -> None:
    made = disco(sm, token, "--work", "arrays-ml", "--data-size", "5GB", "--provider", "local", "--create")
    assert made.returncode == 0, made.stderr
    cid = made.stdout.strip().splitlines()[-1]
    assert "Recommended: Dask on local, 1 worker + 1 master" in made.stdout
    with sm.client("recommend-cli") as api:
        try:
            ready = wait_state(api, cid, {"ready"}, timeout=120)
            assert ready["frameworks"] == ["dask"] and ready["workers"] == 1
            assert "tls://" in ready["outputs"]["frameworks"]["dask"]["scheduler_address"]
        finally:
            assert api.delete(f"/api/v1/clusters/{cid}").status_code == 202
        wait_state(api, cid, {"deleted"}, timeout=60)
    assert not cluster_processes(cid)


def test_create_refuses_what_still_needs_more(sm: ServiceManager, token: str) -> None:
    before = json.loads(disco(sm, token, "--work", "tasks", "-o", "json").stdout)
    refused = disco(sm, token, "--work", "tasks", "--provider", "openstack", "--create")
    assert refused.returncode == 2
    assert "error (cloud_missing): the recommended cluster cannot be created as it is" in refused.stderr
    assert "clouds.yaml" in refused.stderr
    assert before["needs"] == []


@pytest.mark.parametrize(("args", "message"), [
    (["--work", "sql"], "work.0: Input should be 'sql-etl', 'arrays-ml'"),
    (["--work", "tasks", "--max-nodes", "1"], "max_nodes: Input should be greater than or equal to 2"),
    (["--work", "tasks", "--data-size", "lots"], "data_size: String should match pattern"),
    (["--work", "tasks", "--provider", "aws"], "providers.0: Input should be 'local', 'ssh' or 'openstack'"),
])
def test_a_bad_answer_exits_2_with_the_services_message(sm: ServiceManager, token: str, args: list[str],
                                                        message: str) -> None:
    refused = disco(sm, token, *args)
    assert refused.returncode == 2, refused.stdout
    assert refused.stderr.startswith("error (invalid_answers): invalid answers:") and message in refused.stderr
    scripted = disco(sm, token, *args, "-o", "json")
    assert scripted.returncode == 2
    assert json.loads(scripted.stdout)["error"]["code"] == "invalid_answers"


def test_a_malformed_or_missing_option_exits_2(sm: ServiceManager, token: str) -> None:
    missing = disco(sm, token, "--data-size", "5GB")
    assert missing.returncode == 2 and "Missing option '--work'" in missing.stderr
    refused = disco(sm, token, "--work", "tasks", "--max-nodes", "many")
    assert refused.returncode == 2
    assert "Invalid value for '--max-nodes'" in refused.stderr
    scripted = disco(sm, token, "--work", "tasks", "--max-nodes", "many", "-o", "json")
    assert scripted.returncode == 2 and json.loads(scripted.stdout)["error"]["code"] == "usage_error"


def test_no_service_manager_exits_1(sm: ServiceManager, token: str) -> None:
    failed = disco(sm, token, "--work", "tasks", url=f"http://127.0.0.1:{free_port()}")
    assert failed.returncode == 1 and "error (unreachable): cannot reach the service manager" in failed.stderr
