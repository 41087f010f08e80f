"""A real Spark standalone cluster made with the CLI (`--wait`), running a real PySpark job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

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
    for ui in cluster["outputs"]["frameworks"]["spark"]["web_uis"].values():
        assert httpx.get(ui, trust_env=False).status_code == 200  # master and worker web UIs answer

    script = tmp_path / "job.py"
    script.write_text(JOB)
    # The master takes only drivers that know the cluster's secret: its tenant's client config.
    access = httpx.get(f"{sm.url}/api/v1/clusters/{cluster['id']}/credentials", headers={"X-Auth-Token": token},
                       trust_env=False).json()["frameworks"]["spark"]
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
