"""Configuration files rendered from framework.yaml: Hadoop's and Zeppelin's against golden
copies (1, 2 and 5 workers, two node sizes), the precedence of the four levels (framework
defaults < derived from the node < user properties < raw overrides), overrides merged in each
format, and the overrides the spec refuses.

Regenerate the golden files after a deliberate change with DISCO_UPDATE_GOLDEN=1 and read the
diff before committing it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from disco.cluster import plan
from disco.cluster.models import Cluster, Node
from disco.cluster.spec import parse_spec, resolve
from disco.errors import InvalidSpec
from disco.frameworks import config_files
from disco.frameworks.catalog import Catalog, load_catalog
from disco.frameworks.render import render
from disco.providers.base import NodeCapacity, NodeFacts

GOLDEN = Path(__file__).parent / "frameworks" / "golden"
UPDATE = os.environ.get("DISCO_UPDATE_GOLDEN") == "1"
CREDENTIALS = {"tls_cert": "CERT", "tls_key": "KEY", "spark_secret": "SPARK-SECRET", "token": "CLUSTER-TOKEN"}
SIZES = {"small": NodeCapacity(memory_bytes=4 << 30, cpus=2),      # e.g. an m1.medium flavor
         "large": NodeCapacity(memory_bytes=32 << 30, cpus=16)}    # e.g. an m1.xlarge flavor
GIB = 1 << 30


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def cluster_for(catalog: Catalog, workers: int, frameworks: list[Any]) -> Cluster:
    """A stored cluster as the service would make it from this spec (resolved, checked)."""
    resolved = resolve(parse_spec({"workers": workers, "frameworks": frameworks}), catalog, max_workers=64)
    cluster = Cluster(id="c0ffee00-0000-4000-8000-000000000000", tenant="t", name="golden", provider="ssh",
                      spec=resolved.public_dict(), state="installing", target="running", workers=workers)
    cluster.nodes = [Node(name="master", role="master", index=0, host="10.0.0.10", target="running")] + [
        Node(name=f"worker-{i}", role="worker", index=i, host=f"10.0.0.{10 + i}", target="running")
        for i in range(1, workers + 1)]
    return cluster


def facts(capacity: NodeCapacity) -> NodeFacts:
    return NodeFacts(python="/opt/disco/venv/bin/python", site_packages="/opt/disco/venv/lib/python3.11/site-packages",
                     bin_dir="/opt/disco/venv/bin", prefix="/opt/disco", capacity=capacity)


def node_files(cluster: Cluster, catalog: Catalog, name: str, node: Node, capacity: NodeCapacity) -> dict[str, str]:
    """What a framework's processes on the node get: its files and configuration files (the
    same as `plan.launches` hands them, without rendering the processes' commands)."""
    fw = catalog.get(name)
    if fw.roles.get(node.role) is None:  # type: ignore[call-overload]
        return {}
    ctx = plan.context(cluster, catalog, fw, node, f"/opt/disco/clusters/{cluster.id}/{node.name}/work",
                       credentials=CREDENTIALS, facts=facts(capacity))
    return {**render(fw.files, ctx), **plan.node_config_files(cluster, catalog, fw, node, ctx)}


def check_golden(relative: str, text: str) -> None:
    path = GOLDEN / relative
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"no golden file {path} (run with DISCO_UPDATE_GOLDEN=1 to write it)"
    assert text == path.read_text(), f"{relative} differs from its golden copy"


@pytest.mark.parametrize("workers", [1, 2, 5])
@pytest.mark.parametrize("size", sorted(SIZES))
def test_hadoop_files_match_their_golden_copies(catalog: Catalog, workers: int, size: str) -> None:
    cluster = cluster_for(catalog, workers, ["hadoop"])
    checked = 0
    for node in (cluster.nodes[0], cluster.nodes[1]):
        for path, text in sorted(node_files(cluster, catalog, "hadoop", node, SIZES[size]).items()):
            check_golden(f"hadoop/{size}-{workers}w/{node.name}/{path}", text)
            checked += 1
    assert checked == 2 * 6  # start script, workers, core-, hdfs-, yarn-, mapred-site.xml


@pytest.mark.parametrize("workers", [1, 2, 5])
@pytest.mark.parametrize("size", sorted(SIZES))
def test_zeppelin_with_spark_on_yarn_matches_its_golden_copies(catalog: Catalog, workers: int, size: str) -> None:
    cluster = cluster_for(catalog, workers, ["hadoop", "zeppelin"])
    master = cluster.nodes[0]
    files = {**node_files(cluster, catalog, "spark", master, SIZES[size]),
             **node_files(cluster, catalog, "zeppelin", master, SIZES[size])}
    for path in ("spark-conf/spark-defaults.conf", "zeppelin/conf/zeppelin-site.xml", "zeppelin/conf/shiro.ini",
                 "zeppelin/start.sh"):
        check_golden(f"zeppelin/{size}-{workers}w/{path}", files[path])


def values(text: str, fmt: str = "hadoop-xml") -> dict[str, Any]:
    return config_files.parse(fmt, text)


def yarn_site(cluster: Cluster, catalog: Catalog, capacity: NodeCapacity) -> dict[str, Any]:
    return values(node_files(cluster, catalog, "hadoop", cluster.nodes[1], capacity)["hadoop-conf/yarn-site.xml"])


def test_replication_is_the_smaller_of_three_and_the_workers(catalog: Catalog) -> None:
    for workers, expected in ((1, "1"), (2, "2"), (3, "3"), (5, "3")):
        cluster = cluster_for(catalog, workers, ["hadoop"])
        files = node_files(cluster, catalog, "hadoop", cluster.nodes[1], SIZES["small"])
        hdfs = values(files["hadoop-conf/hdfs-site.xml"])
        assert hdfs["dfs.replication"] == expected


@pytest.mark.parametrize(("memory_gib", "cpus", "memory_mb", "vcores"), [
    (1, 1, 512, 1),        # nothing left after the OS's 1 GiB: still one smallest container
    (2, 2, 1024, 1),       # 2048 - 1024 reserved
    (4, 2, 3072, 1),       # 4096 - 1024
    (6, 4, 4608, 3),       # 6144 - 1536 (a quarter), a multiple of 512
    (32, 16, 24576, 15),   # 32768 - 8192
])
def test_yarn_memory_and_vcores_follow_the_documented_formula(
        catalog: Catalog, memory_gib: int, cpus: int, memory_mb: int, vcores: int) -> None:
    cluster = cluster_for(catalog, 1, ["hadoop"])
    yarn = yarn_site(cluster, catalog, NodeCapacity(memory_bytes=memory_gib * GIB, cpus=cpus))
    assert yarn["yarn.nodemanager.resource.memory-mb"] == str(memory_mb)
    assert yarn["yarn.nodemanager.resource.cpu-vcores"] == str(vcores)
    assert yarn["yarn.scheduler.maximum-allocation-mb"] == str(memory_mb)
    assert int(memory_mb) % 512 == 0


def test_each_level_of_precedence_wins_over_the_ones_below(catalog: Catalog) -> None:
    """One key decided at each level: framework default, derived, user property, raw override."""
    cluster = cluster_for(catalog, 2, [{
        "name": "hadoop",
        "properties": {"nodemanager_vcores": 2, "nodemanager_memory_mb": 5120},
        "overrides": {"yarn-site.xml": {"yarn.nodemanager.resource.memory-mb": 4096,
                                        "yarn.log-aggregation-enable": True}},
    }])
    yarn = yarn_site(cluster, catalog, NodeCapacity(memory_bytes=8 * GIB, cpus=4))
    assert yarn["yarn.scheduler.minimum-allocation-mb"] == "512"       # 1. the framework's default
    assert yarn["yarn.nodemanager.vmem-check-enabled"] == "false"      # 1. a literal of framework.yaml
    hdfs = values(node_files(cluster, catalog, "hadoop", cluster.nodes[1],
                             NodeCapacity(memory_bytes=8 * GIB, cpus=4))["hadoop-conf/hdfs-site.xml"])
    assert hdfs["dfs.replication"] == "2"                              # 2. derived: min(3, workers)
    assert yarn["yarn.nodemanager.resource.cpu-vcores"] == "2"         # 3. the property over derived 3
    assert yarn["yarn.scheduler.maximum-allocation-mb"] == "5120"      # 3. the property over derived 6144
    assert yarn["yarn.nodemanager.resource.memory-mb"] == "4096"       # 4. the override over the property
    assert yarn["yarn.log-aggregation-enable"] == "true"               # 4. a key only an override sets
    # Without the property and the override, the derived value holds; it follows the node.
    plain = cluster_for(catalog, 2, ["hadoop"])
    assert yarn_site(plain, catalog, NodeCapacity(memory_bytes=8 * GIB, cpus=4))[
        "yarn.nodemanager.resource.memory-mb"] == "6144"
    assert yarn_site(plain, catalog, NodeCapacity(memory_bytes=16 * GIB, cpus=4))[
        "yarn.nodemanager.resource.memory-mb"] == "12288"


def test_an_override_keeps_the_files_order_and_appends_new_keys(catalog: Catalog) -> None:
    cluster = cluster_for(catalog, 1, [{"name": "hadoop", "overrides": {
        "hdfs-site.xml": {"dfs.blocksize": "268435456", "dfs.namenode.handler.count": 20}}}])
    text = node_files(cluster, catalog, "hadoop", cluster.nodes[1], SIZES["small"])["hadoop-conf/hdfs-site.xml"]
    keys = list(values(text))
    assert keys[:2] == ["dfs.replication", "dfs.blocksize"] and keys[-1] == "dfs.namenode.handler.count"
    assert values(text)["dfs.blocksize"] == "268435456"
    assert text.count("dfs.blocksize") == 1


def test_spark_defaults_take_overrides_and_keep_the_secret_locked(catalog: Catalog) -> None:
    cluster = cluster_for(catalog, 1, [{"name": "spark", "overrides": {
        "spark-defaults.conf": {"spark.sql.shuffle.partitions": 8, "spark.executor.memory": "2g"},
        "spark-daemons.conf": {"spark.worker.cleanup.enabled": True}}}])
    defaults = values(node_files(cluster, catalog, "spark", cluster.nodes[0], SIZES["small"])
                      ["spark-conf/spark-defaults.conf"], "properties")
    assert defaults["spark.sql.shuffle.partitions"] == "8"
    assert defaults["spark.executor.memory"] == "2g"                   # over the property's default 1g
    assert defaults["spark.master"] == "spark://10.0.0.10:7077"        # no hadoop: Spark's own master
    assert defaults["spark.authenticate.secret"] == "SPARK-SECRET"
    daemons = values(node_files(cluster, catalog, "spark", cluster.nodes[1], SIZES["small"])["spark.properties"],
                     "properties")
    assert daemons["spark.worker.cleanup.enabled"] == "true" and daemons["spark.authenticate"] == "true"
    with pytest.raises(InvalidSpec, match="spark.authenticate is set by DISCO") as info:
        cluster_for(catalog, 1, [{"name": "spark", "overrides": {
            "spark-daemons.conf": {"spark.authenticate": "false"}}}])
    assert info.value.code == "invalid_override" and info.value.status == 422


def test_spark_runs_on_yarn_only_with_hadoop_and_when_asked(catalog: Catalog) -> None:
    def master_of(frameworks: list[Any]) -> str:
        cluster = cluster_for(catalog, 1, frameworks)
        text = node_files(cluster, catalog, "spark", cluster.nodes[0], SIZES["small"])["spark-conf/spark-defaults.conf"]
        return values(text, "properties")["spark.master"]

    assert master_of(["spark"]) == "spark://10.0.0.10:7077"
    assert master_of(["hadoop", "spark"]) == "yarn"
    assert master_of(["spark", "hadoop"]) == "yarn"
    assert master_of(["hadoop", {"name": "spark", "properties": {"yarn": False}}]) == "spark://10.0.0.10:7077"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"hbase-site.xml": {"a.b": "1"}}, "renders no configuration file 'hbase-site.xml'"),
    ({"hdfs-site.xml": {"dfs.namenode.rpc-address": "0.0.0.0:8020"}}, "set by DISCO"),
    ({"core-site.xml": {"fs.defaultFS": "file:///"}}, "set by DISCO"),
    ({"hdfs-site.xml": {"dfs.blocksize": "1\n<property>"}}, "control characters"),
    ({"hdfs-site.xml": {"dfs.blocksize": ["1"]}}, "string, number or boolean"),
    ({"hdfs-site.xml": {"dfs.blocksize": None}}, "string, number or boolean"),
    ({"hdfs-site.xml": {"bad key": "1"}}, "dotted name"),
    ({"hdfs-site.xml": {"</name>": "1"}}, "dotted name"),
    ({"hdfs-site.xml": {"x.y": "v" * 5000}}, "longer than 4096"),
    ({"hdfs-site.xml": {f"k.{i}": "1" for i in range(201)}}, "at most 200"),
])
def test_bad_overrides_are_refused_naming_file_and_key(catalog: Catalog, overrides: dict, message: str) -> None:
    with pytest.raises(InvalidSpec, match=message) as info:
        resolve(parse_spec({"frameworks": [{"name": "hadoop", "overrides": overrides}]}), catalog, max_workers=4)
    assert info.value.code == "invalid_override" and info.value.status == 422
    assert info.value.details["framework"] == "hadoop"


def test_an_override_of_a_file_shape_the_spec_refuses(catalog: Catalog) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec({"frameworks": [{"name": "hadoop", "overrides": {"hdfs-site.xml": "dfs.blocksize=1"}}]})
    assert info.value.code == "invalid_spec"


def test_xml_values_are_escaped() -> None:
    text = config_files.serialise("hadoop-xml", {"a.b": "x<y&z>\"'"})
    assert values(text) == {"a.b": "x<y&z>\"'"}
    assert "<y" not in text


def test_properties_values_keep_backslashes() -> None:
    text = config_files.serialise("properties", {"spark.driver.extraJavaOptions": r"-Dpath=C:\tmp -Dx=1"})
    assert text == "spark.driver.extraJavaOptions -Dpath=C:\\\\tmp -Dx=1\n"
    assert values(text, "properties") == {"spark.driver.extraJavaOptions": r"-Dpath=C:\tmp -Dx=1"}


def test_yaml_files_merge_deeply_and_dotted_keys_are_paths(tmp_path: Path) -> None:
    folder = tmp_path / "yamlfw"
    folder.mkdir()
    (folder / "framework.yaml").write_text(
        "name: yamlfw\n"
        "roles: {master: {processes: [{name: p, command: [sleep, '1']}]}}\n"
        "config_files:\n"
        "  app.yaml:\n"
        "    path: conf/app.yaml\n"
        "    format: yaml\n"
        "    locked: [security]\n"
        "    values:\n"
        "      worker: {memory: {target: 0.6, spill: 0.7}, threads: '{{ node.cpus }}'}\n"
        "      security: {tls: true}\n")
    catalog = load_catalog(tmp_path)
    cluster = cluster_for(catalog, 0, [{"name": "yamlfw", "overrides": {"app.yaml": {
        "worker.memory.target": 0.8, "scheduler": {"idle": "1h"}}}}])
    text = node_files(cluster, catalog, "yamlfw", cluster.nodes[0], SIZES["small"])["conf/app.yaml"]
    assert values(text, "yaml") == {"worker": {"memory": {"target": 0.8, "spill": 0.7}, "threads": "2"},
                                    "security": {"tls": True}, "scheduler": {"idle": "1h"}}
    with pytest.raises(InvalidSpec, match="set by DISCO"):
        cluster_for(catalog, 0, [{"name": "yamlfw", "overrides": {"app.yaml": {"security.tls": False}}}])


def test_plan_shows_every_nodes_files_with_the_secrets_hidden(catalog: Catalog) -> None:
    cluster = cluster_for(catalog, 2, [{"name": "hadoop", "overrides": {"hdfs-site.xml": {"dfs.blocksize": "64m"}}},
                                       "zeppelin"])
    shown = plan.resolved_files(cluster, catalog, {n.name: SIZES["small"] for n in cluster.nodes})
    assert set(shown) == {"master", "worker-1", "worker-2"}
    assert set(shown["master"]) == {"hadoop", "spark", "zeppelin"}
    assert set(shown["worker-1"]) == {"hadoop", "spark"}  # Zeppelin runs on the master only
    assert values(shown["worker-2"]["hadoop"]["hadoop-conf/hdfs-site.xml"])["dfs.blocksize"] == "64m"
    assert values(shown["master"]["spark"]["spark-conf/spark-defaults.conf"], "properties")[
        "spark.authenticate.secret"] == plan.HIDDEN
    everything = repr(shown)
    assert "CLUSTER-TOKEN" not in everything and "SPARK-SECRET" not in everything


def test_the_zeppelin_password_is_stored_as_a_shiro_hash_only(catalog: Catalog) -> None:
    import base64
    import hashlib

    from disco.frameworks.render import derive_secret

    cluster = cluster_for(catalog, 1, ["zeppelin"])
    shiro = node_files(cluster, catalog, "zeppelin", cluster.nodes[0], SIZES["small"])["zeppelin/conf/shiro.ini"]
    password = derive_secret(CREDENTIALS["token"], "zeppelin")
    assert password not in shiro and CREDENTIALS["token"] not in shiro
    line = next(line for line in shiro.splitlines() if line.startswith("disco = "))
    crypt, role = line.removeprefix("disco = ").split(", ")
    _, scheme, algorithm, iterations, salt, digest = crypt.split("$")
    assert (scheme, algorithm, role) == ("shiro1", "SHA-256", "admin")
    # Shiro's own check: SHA-256 of salt + password, then of the digest, `iterations` times in all.
    expected = hashlib.sha256(base64.b64decode(salt) + password.encode()).digest()
    for _ in range(int(iterations) - 1):
        expected = hashlib.sha256(expected).digest()
    assert base64.b64decode(digest) == expected
