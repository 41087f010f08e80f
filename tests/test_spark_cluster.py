"""A real Spark standalone cluster made with the CLI (`--wait`), running a real PySpark job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from sm_fixtures import ServiceManager, cluster_processes, listening_on

pytestmark = pytest.mark.slow

JOB = textwrap.dedent("""
    import sys
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master(sys.argv[1]).appName("disco-test")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.executor.memory", "512m").config("spark.ui.enabled", "false").getOrCreate())
    words = spark.sparkContext.parallelize(["a b", "b c", "c c"] * 100, 4)
    counts = dict(words.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(lambda x, y: x + y).collect())
    print("RESULT", sorted(counts.items()))
    spark.stop()
""")


def run_spark_job(master_url: str, spark_defaults: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """JOB from this machine against a cluster's master, with the cluster's client settings
    (its spark-defaults.conf: the secret) in a configuration directory of its own."""
    conf_dir = workdir / "spark-conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text(spark_defaults)
    script = workdir / "job.py"
    script.write_text(JOB)
    return subprocess.run([sys.executable, str(script), master_url], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_CONF_DIR": str(conf_dir)})

def disco(sm: ServiceManager, token: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DISCO_URL": sm.url, "DISCO_TOKEN": token, "DISCO_DATA_DIR": str(sm.data_dir)}
    return subprocess.run([sys.executable, "-m", "disco.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_spark_cluster_runs_a_pyspark_job(sm: ServiceManager, tmp_path) -> None:  # type: ignore[no-untyped-def]
    token = sm.token("spark-user")
    made = disco(sm, token, "cluster", "create", "--framework", "spark", "--workers", "2",
                 "--property", "spark.worker_memory=768m", "--wait", "--output", "json")
    assert made.returncode == 0, made.stderr
    cluster = json.loads(made.stdout)
    assert cluster["state"] == "ready"
    assert cluster["frameworks"] == ["java", "spark"]
    # Progress was shown step by step while waiting.
    for step in ("provisioning", "java", "spark", "ready"):
        assert step in made.stderr
    master_url = cluster["outputs"]["frameworks"]["spark"]["master_url"]
    assert master_url.startswith("spark://127.")
    # The master takes only drivers that know the cluster's secret, and its web UIs only
    # requests that carry its token: its tenant's client config has both.
    access = httpx.get(f"{sm.url}/api/v1/clusters/{cluster['id']}/credentials", headers={"X-Auth-Token": token},
                       trust_env=False).json()["frameworks"]["spark"]
    ui_token = access["env"]["DISCO_UI_TOKEN"]
    for ui in cluster["outputs"]["frameworks"]["spark"]["web_uis"].values():  # master's and workers'
        for auth in (None, ("anyone", "wrong"), ("anyone", ui_token[:-1])):
            refused = httpx.get(ui, auth=auth, trust_env=False)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Basic realm="disco"'
        assert httpx.get(ui, auth=("anyone", ui_token), trust_env=False).status_code == 200
        assert httpx.get(ui, headers={"Authorization": f"Bearer {ui_token}"}, trust_env=False).status_code == 200

    script = tmp_path / "job.py"
    script.write_text(JOB)
    conf_dir = tmp_path / "spark-conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text(access["files"]["spark-defaults.conf"])
    job = subprocess.run([sys.executable, str(script), master_url], capture_output=True, text=True, timeout=180,
                         env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_CONF_DIR": str(conf_dir)})
    assert "RESULT [('a', 100), ('b', 200), ('c', 300)]" in job.stdout, job.stderr[-2000:]

    logs = disco(sm, token, "cluster", "logs", cluster["id"], "master/spark-master")
    assert "Starting Spark master" in logs.stdout or "Master" in logs.stdout

    hosts = [n["host"] for n in cluster["nodes"]]
    gone = disco(sm, token, "cluster", "delete", cluster["id"], "--wait", "--output", "json")
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["state"] == "deleted"
    assert cluster_processes(cluster["id"]) == []
    assert listening_on(hosts) == []
    assert not (sm.data_dir / "clusters" / cluster["id"]).exists()
