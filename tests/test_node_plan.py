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
