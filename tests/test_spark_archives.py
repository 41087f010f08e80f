"""Spark's class-data archives: recorded by the service manager, never by a cluster, and mapped
by an isolated cluster's daemons."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import psutil
import pytest

from disco.framework_support import spark_archives
from disco.frameworks.render import module_dir, render
from sm_fixtures import ServiceManager, cluster_processes, wait_state

pytestmark = pytest.mark.slow

JAVA_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _support_jar() -> str:
    return render("{{ java_support(module_dir('pyspark') ~ '/jars/*') }}", {})


def _recorders() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any("ArchiveClassesAtExit" in part for part in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_the_service_manager_records_trusted_archives_and_leaves_nothing(tmp_path: Path) -> None:
    spark_home = module_dir("pyspark")
    jar = str(tmp_path / "build" / "disco-support.jar")
    (tmp_path / "build").mkdir(mode=0o755)
    shutil.copy(_support_jar(), jar)
    key = "test" + os.urandom(4).hex()
    spark_archives.record(spark_home, jar, JAVA_OPTS, key)
    for role in spark_archives.ROLES:
        archive = spark_archives.archive_path(jar, role, key)
        assert archive.stat().st_size > 1 << 20  # an archive of a whole daemon's classes
        assert archive.stat().st_uid == os.geteuid() and archive.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == sorted(
        ["disco-support.jar", f"spark-master-{key}.jsa", f"spark-worker-{key}.jsa"])  # no scratch left
    assert _recorders() == []


def test_an_archive_others_could_write_is_not_mapped(tmp_path: Path) -> None:
    folder = tmp_path / "build"
    folder.mkdir(mode=0o755)
    jar = str(folder / "disco-support.jar")
    key = spark_archives._key(module_dir("pyspark"), jar, JAVA_OPTS)
    archive = spark_archives.archive_path(jar, "master", key)
    archive.write_bytes(b"x" * 4096)
    archive.chmod(0o644)
    assert spark_archives._trusted(archive)
    archive.chmod(0o664)  # its group could have planted anything in it
    assert not spark_archives._trusted(archive)
    archive.chmod(0o644)
    folder.chmod(0o777)  # anyone could have replaced it
    assert not spark_archives._trusted(archive)


def test_an_isolated_clusters_daemons_map_the_archives_and_record_none(sm: ServiceManager) -> None:
    spark_home = module_dir("pyspark")
    jar = _support_jar()
    key = spark_archives._key(spark_home, jar, JAVA_OPTS)
    if not all(spark_archives._trusted(spark_archives.archive_path(jar, r, key)) for r in spark_archives.ROLES):
        spark_archives.record(spark_home, jar, JAVA_OPTS, key)
    client = sm.client("spark-archives")
    made = client.post("/api/v1/clusters", json={"workers": 1, "frameworks": [
        {"name": "spark", "properties": {"worker_memory": "512m"}}]})
    assert made.status_code == 201, made.text
    cluster = made.json()
    try:
        assert wait_state(client, cluster["id"], {"ready", "failed"}, timeout=180)["state"] == "ready"
        daemons = [p for p in cluster_processes(cluster["id"]) if "java" in p.name()]
        assert len(daemons) == 2
        for proc in daemons:
            command = " ".join(proc.cmdline())
            assert "ArchiveClassesAtExit" not in command
            mapped = re.search(r"-XX:SharedArchiveFile=(\S+)", command)
            assert mapped, command
            assert mapped.group(1) in Path(f"/proc/{proc.pid}/maps").read_text()  # really mapped
            if os.geteuid() == 0:
                assert proc.uids().real != 0  # run by the cluster's own user, not by us
    finally:
        client.delete(f"/api/v1/clusters/{cluster['id']}")
        wait_state(client, cluster["id"], {"deleted"}, timeout=60)
