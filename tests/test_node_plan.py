"""What a cluster's plan asks of a host made from scratch, and how its commands name the
software on that host rather than on the service manager's machine."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
from jupyter_server.auth.security import passwd_check

from disco.cluster import plan
from disco.cluster.models import Cluster, Node
from disco.frameworks.catalog import Catalog, load_catalog
from disco.frameworks.pins import distribution_name
from disco.frameworks.render import module_dir, render
from disco.providers.base import NodeFacts

FACTS = NodeFacts(python="/opt/disco/venv/bin/python", bin_dir="/opt/disco/venv/bin",
                  site_packages="/opt/disco/venv/lib/python3.11/site-packages")
CREDENTIALS = {"tls_cert": "CERT", "tls_key": "KEY", "spark_secret": "S", "token": "T"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def cluster_of(catalog: Catalog, *frameworks: str) -> Cluster:
    resolved = catalog.resolve(list(frameworks))  # names, dependencies first
    cluster = Cluster(id="c0ffee00-0000-4000-8000-000000000000", tenant="t", name="n", provider="ssh",
                      spec={"resolved_frameworks": resolved, "properties": {
                          name: {key: prop.default for key, prop in catalog.get(name).properties.items()}
                          for name in resolved}},
                      state="installing", target="running", workers=1)
    cluster.nodes = [Node(name="master", role="master", index=0, host="127.0.100.1", target="running"),
                     Node(name="worker-1", role="worker", index=1, host="127.0.100.2", target="running")]
    return cluster


def test_needs_come_from_the_frameworks_pinned_to_what_runs_here(catalog: Catalog) -> None:
    needs = plan.node_needs(cluster_of(catalog, "spark", "dask"), catalog)
    assert needs.os_packages == ("openjdk-17-jre-headless",)  # Spark's dependency, java
    assert needs.python_requirements == (f"pyspark=={metadata.version('pyspark')}",
                                         f"dask=={metadata.version('dask')}",
                                         f"distributed=={metadata.version('distributed')}",
                                         f"bokeh=={metadata.version('bokeh')}")


def test_a_nodes_commands_name_its_own_python(catalog: Catalog) -> None:
    cluster = cluster_of(catalog, "dask")
    (scheduler, _), = plan.launches(cluster, catalog, catalog.get("dask"), cluster.nodes[0],
                                    "/opt/disco/clusters/x/master/work", credentials=CREDENTIALS, facts=FACTS)
    assert scheduler.argv[0] == FACTS.python
    here = plan.launches(cluster, catalog, catalog.get("dask"), cluster.nodes[0], "/w", credentials=CREDENTIALS)
    assert here[0][0].argv[0] != FACTS.python  # without facts: the service manager's own


def test_spark_on_a_node_uses_its_pyspark_and_the_jar_from_discos_wheel(catalog: Catalog) -> None:
    cluster = cluster_of(catalog, "spark")
    (master, _), = plan.launches(cluster, catalog, catalog.get("spark"), cluster.nodes[0], "/w",
                                 credentials=CREDENTIALS, facts=FACTS)
    assert master.argv[0] == f"{FACTS.site_packages}/pyspark/bin/spark-class"
    assert master.env["SPARK_HOME"] == f"{FACTS.site_packages}/pyspark"
    jar = master.env["SPARK_DAEMON_CLASSPATH"]
    assert jar.startswith(f"{FACTS.site_packages}/disco/framework_support/java-classes/")
    # The same file exists here, where the wheel that carries it is built.
    local = Path(module_dir("disco")) / jar.removeprefix(f"{FACTS.site_packages}/disco/")
    assert local.is_file()
    assert "SharedArchiveFile" not in master.env["SPARK_DAEMON_JAVA_OPTS"]


def test_requirements_with_extras_are_pinned_by_their_distribution(catalog: Catalog) -> None:
    needs = plan.node_needs(cluster_of(catalog, "ray", "jupyter"), catalog)
    # `ray[default]` is pinned to the installed `ray`, extras kept: nodes get the dashboard too.
    assert needs.python_requirements == (f"ray[default]=={metadata.version('ray')}",
                                         f"jupyterlab=={metadata.version('jupyterlab')}")
    assert distribution_name("ray[default]") == "ray"
    assert distribution_name("dask") == "dask"


def test_jupyter_config_holds_only_the_hash_of_its_password(catalog: Catalog) -> None:
    cluster = cluster_of(catalog, "dask", "jupyter")
    (lab, _), = plan.launches(cluster, catalog, catalog.get("jupyter"), cluster.nodes[0], "/w",
                              credentials={**CREDENTIALS, "token": "t" * 43})
    password = render("{{ derive_secret(credentials.token, 'jupyter') }}", {"credentials": {"token": "t" * 43}})
    assert password and all(password not in text for text in [*lab.files.values(), *lab.env.values(), *lab.argv])
    config = json.loads(lab.files["jupyter/config/jupyter_server_config.json"])
    assert passwd_check(config["PasswordIdentityProvider"]["hashed_password"], password)
    kernel = json.loads(lab.files["jupyter/data/kernels/python3/kernel.json"])
    assert kernel["env"]["DASK_SCHEDULER_ADDRESS"].startswith("tls://")
    assert "SPARK_CONF_DIR" not in kernel["env"]  # no Spark in this cluster


# -- node capacity: what frameworks size their daemons from --------------------------------

def test_a_hosts_facts_say_its_memory_and_cpus() -> None:
    import os

    from disco.node.facts import facts

    found = facts()
    total = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal:")).split()[1]) * 1024
    assert 0 < found["memory_bytes"] <= total
    assert 1 <= found["cpus"] <= (os.cpu_count() or 1)


def test_the_local_provider_gives_each_node_a_fair_share_of_this_machine() -> None:
    import os

    import psutil

    from disco.providers.local import share_of_this_machine

    three = share_of_this_machine(3)
    assert three.memory_bytes == psutil.virtual_memory().total // 3
    assert three.cpus == max(1, (os.cpu_count() or 1) // 3)
    assert share_of_this_machine(1000).cpus == 1
    assert share_of_this_machine(0).memory_bytes == psutil.virtual_memory().total


def test_templates_see_the_nodes_capacity_only_when_it_is_known(catalog: Catalog) -> None:
    from disco.errors import DiscoError
    from disco.providers.base import NodeCapacity

    cluster = cluster_of(catalog, "hadoop")
    fw = catalog.get("hadoop")
    sized = plan.context(cluster, catalog, fw, cluster.nodes[1], "/w", facts=FACTS,
                         capacity=NodeCapacity(memory_bytes=6 << 30, cpus=3))
    assert (sized["node"]["memory_mb"], sized["node"]["cpus"]) == (6144, 3)
    assert sized["derived"]["yarn_memory_mb"] == 4608 and sized["derived"]["yarn_vcores"] == 2
    # From the node's facts (an SSH host, a flavor) when no capacity is passed.
    with_facts = plan.context(cluster, catalog, fw, cluster.nodes[1], "/w",
                              facts=NodeFacts(FACTS.python, FACTS.site_packages, FACTS.bin_dir, "/opt/disco",
                                              NodeCapacity(memory_bytes=2 << 30, cpus=1)))
    assert with_facts["derived"]["yarn_memory_mb"] == 1024 and with_facts["software_dir"] == "/opt/disco"
    unsized = plan.context(cluster, catalog, fw, cluster.nodes[1], "/w")
    assert "memory_mb" not in unsized["node"] and unsized["derived"] == {}
    with pytest.raises(DiscoError, match="memory_mb"):
        render("{{ node.memory_mb }}", unsized)


def test_hadoop_and_zeppelin_depend_on_java_through_spark(catalog: Catalog) -> None:
    assert catalog.resolve(["hadoop"]) == ["java", "hadoop"]
    assert catalog.resolve(["zeppelin"]) == ["java", "spark", "zeppelin"]
    assert catalog.resolve(["hadoop", "zeppelin"]) == ["java", "hadoop", "spark", "zeppelin"]
    assert catalog.get("zeppelin").depends == ["spark"] and catalog.get("spark").depends == ["java"]
    needs = plan.node_needs(cluster_of(catalog, "hadoop"), catalog)
    assert needs.os_packages == ("openjdk-17-jre-headless",)
    (hadoop,) = needs.downloads
    assert hadoop.url == "https://archive.apache.org/dist/hadoop/common/hadoop-3.4.3/hadoop-3.4.3.tar.gz"
    assert len(hadoop.sha512) == 128 and hadoop.sha256 == "" and hadoop.unpack


def test_hadoop_outputs_name_its_uis_and_filesystem(catalog: Catalog) -> None:
    cluster = cluster_of(catalog, "hadoop")
    hadoop = plan.outputs(cluster, catalog)["frameworks"]["hadoop"]
    assert hadoop["fs_default_fs"] == "hdfs://127.0.100.1:8020"
    assert hadoop["hdfs_ui"] == "http://127.0.100.1:9870/"
    assert hadoop["yarn_ui"] == "http://127.0.100.1:8088/cluster"
    assert hadoop["web_uis"]["namenode_ui"] == "http://127.0.100.1:9870/"
    assert hadoop["web_uis"]["nodemanager_ui@worker-1"] == "http://127.0.100.2:8042/node"
    zeppelin = plan.outputs(cluster_of(catalog, "zeppelin"), catalog)["frameworks"]["zeppelin"]
    assert zeppelin["url"] == "http://127.0.100.1:8892/"


def test_cli_override_syntax() -> None:
    from disco.cli.clusters import _parse_override

    assert _parse_override("hadoop/hdfs-site.xml:dfs.blocksize=268435456") == (
        "hadoop", "hdfs-site.xml", "dfs.blocksize", "268435456")
    assert _parse_override("spark/spark-defaults.conf:spark.executor.extraJavaOptions=-Da=b") == (
        "spark", "spark-defaults.conf", "spark.executor.extraJavaOptions", "-Da=b")
    for bad in ("hdfs-site.xml:dfs.blocksize=1", "hadoop/hdfs-site.xml=1", "hadoop/:k=v", "hadoop/f:k"):
        with pytest.raises(ValueError, match="FRAMEWORK/FILE:KEY=VALUE"):
            _parse_override(bad)


def test_the_ssh_provider_keeps_a_nodes_size_from_its_facts() -> None:
    from disco.node.facts import facts
    from disco.providers.remote_nodes import node_facts_of

    answer = facts()  # what `python3 -m disco.node facts` answers on a host
    kept = node_facts_of(answer, "/opt/disco")
    assert kept.capacity is not None
    assert (kept.capacity.memory_bytes, kept.capacity.cpus) == (answer["memory_bytes"], answer["cpus"])
    assert kept.prefix == (answer["node_prefix"] or "/opt/disco")
    older = {k: v for k, v in answer.items() if k not in ("memory_bytes", "cpus")}  # a node's older disco
    assert node_facts_of(older, "/opt/disco").capacity is None
