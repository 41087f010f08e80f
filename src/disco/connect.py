"""Connect to a DISCO cluster from Python with its credentials, no address or secret to copy:

    from disco.connect import dask_client, spark_builder
    client = dask_client("my-cluster")               # a distributed.Client over mutual TLS
    spark = spark_builder("my-spark").getOrCreate()  # a SparkSession with spark.authenticate

A cluster is named by its id, a unique prefix of it, or its name. The credentials come from
the service manager (`GET /api/v1/clusters/{id}/credentials`) with the token the `disco` CLI
would use (DISCO_URL / DISCO_TOKEN, ~/.config/disco/config.yaml, the local service manager's
token file). Their files (certificate, key, spark-defaults.conf) are written in a private
directory, ~/.config/disco/clusters/<id>/ (0700, files 0600): `disco cluster env ID` writes the
same files and prints the same variables for a shell.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from disco.cli.client import Client, config_file, resolve_cluster_id, resolve_endpoint

if TYPE_CHECKING:  # heavy imports, made only by the helper that needs them
    import distributed
    from pyspark.sql import SparkSession

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ClusterAccess:
    id: str
    name: str
    directory: Path
    # Every variable of every framework, file paths made absolute.
    env: dict[str, str]


def clusters_dir() -> Path:
    return config_file().parent / "clusters"


def fetch_access(cluster: str, *, url: str | None = None, token: str | None = None,
                 directory: Path | None = None) -> ClusterAccess:
    """Ask the service manager for the cluster's credentials and write their files.
    Raises disco.cli.client.ApiError when the service manager refuses or cannot be reached."""
    client = Client(*resolve_endpoint(url, token))
    try:
        cluster_id = resolve_cluster_id(client, cluster)
        body = client.request("GET", f"/api/v1/clusters/{cluster_id}/credentials")
    finally:
        client.http.close()
    return write_access(body, directory or clusters_dir() / body["id"])


def write_access(body: dict[str, Any], directory: Path) -> ClusterAccess:
    """Write each framework's files under `directory`/<framework>/ and work out its variables."""
    _private_dir(directory)
    env: dict[str, str] = {}
    for framework, access in sorted(body["frameworks"].items()):
        base = directory / framework
        _private_dir(base)
        for relative, content in access["files"].items():
            _write_private(base, relative, content)
        for name, value in access["env"].items():
            env[_checked_name(name)] = value
        for name, relative in access["file_env"].items():
            env[_checked_name(name)] = str(_inside(base, relative))
    return ClusterAccess(id=body["id"], name=body["name"], directory=directory, env=env)


def dask_client(cluster: str, *, url: str | None = None, token: str | None = None,
                **client_kwargs: Any) -> "distributed.Client":
    """A distributed.Client connected to the cluster's scheduler over its mutual TLS."""
    import dask.config
    from distributed import Client as DaskClient
    from distributed.security import Security

    access = fetch_access(cluster, url=url, token=token)
    if "DASK_SCHEDULER_ADDRESS" not in access.env:
        raise ValueError(f"cluster {access.id} runs no Dask")
    # The same variables `disco cluster env` prints, read the way Dask reads its environment,
    # but applied to this client only: the process's own Dask config stays as it was.
    with dask.config.set(_dotted(dask.config.collect_env(access.env))):
        security = Security()
    return DaskClient(access.env["DASK_SCHEDULER_ADDRESS"], security=security, **client_kwargs)


def spark_builder(cluster: str, *, url: str | None = None, token: str | None = None) -> "SparkSession.Builder":
    """SparkSession.builder for the cluster: its master URL and secret come from the
    spark-defaults.conf in the cluster's private directory, through SPARK_CONF_DIR.

    The secret goes through that file only: PySpark passes options set on the builder to the
    JVM on its command line, where `ps` shows them. So this sets SPARK_CONF_DIR (and
    SPARK_LOCAL_IP) in this process's environment, which the JVM that getOrCreate() starts
    reads; a JVM this process started earlier keeps the configuration it had."""
    from pyspark.sql import SparkSession

    access = fetch_access(cluster, url=url, token=token)
    if "SPARK_CONF_DIR" not in access.env:
        raise ValueError(f"cluster {access.id} runs no Spark")
    for name in ("SPARK_CONF_DIR", "SPARK_LOCAL_IP"):
        if name in access.env:
            os.environ[name] = access.env[name]
    return SparkSession.builder


def _dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} as {"a.b": 1}: dask.config.set replaces a whole subtree given as a dict."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _checked_name(name: str) -> str:
    # The names end up in `export` lines that a shell evaluates.
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"the service manager sent an invalid variable name {name!r}")
    return name


def _inside(base: Path, relative: str) -> Path:
    path = (base / relative).resolve()
    if path != base.resolve() and base.resolve() not in path.parents:
        raise ValueError(f"the service manager sent a path outside {base}: {relative!r}")
    return path


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)  # mkdir's mode is cut by the umask, and the directory may be older


def _write_private(base: Path, relative: str, content: str) -> None:
    path = _inside(base, relative)
    _private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.replace(tmp, path)
