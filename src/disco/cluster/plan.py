"""What should run where: turns a stored cluster and the catalogue into launches and outputs.

Pure functions of their inputs, so they are cheap to test and identical before and after
a restart of the service manager.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from disco.cluster.models import Cluster, Node
from disco.errors import DiscoError
from disco.frameworks import config_files
from disco.frameworks.catalog import Catalog
from disco.frameworks.downloads import resolve_download
from disco.frameworks.pins import MissingPackage, pinned_python_packages
from disco.frameworks.model import ConfigFileDef, FrameworkDef, PortDef
from disco.frameworks.render import render
from disco.providers.base import Download, Launch, NodeCapacity, NodeFacts, NodeNeeds

# What `plan` shows in place of the cluster's credentials: a rendered file may hold them.
HIDDEN = "<hidden>"
HIDDEN_CREDENTIALS = {"tls_cert": HIDDEN, "tls_key": HIDDEN, "spark_secret": HIDDEN, "token": HIDDEN}


def live_nodes(cluster: Cluster) -> list[Node]:
    return [n for n in cluster.nodes if n.target == "running"]


def master_node(cluster: Cluster) -> Node:
    return next(n for n in cluster.nodes if n.role == "master")


def masters_of(cluster: Cluster) -> int:
    """The spec's `masters`: how many times a framework's per_master processes run on the
    master node (each on its own port: a per_master port + i)."""
    return int(cluster.spec.get("masters", 1) or 1)


def instance_name(base: str, index: int) -> str:
    """The i-th (from 0) copy of a per_master process or port: the first keeps the name."""
    return base if index == 0 else f"{base}-{index + 1}"


def context(cluster: Cluster, catalog: Catalog, fw: FrameworkDef, node: Node | None,
            workdir: str = "", secrets: dict[str, dict[str, Any]] | None = None,
            credentials: dict[str, str] | None = None, facts: NodeFacts | None = None,
            capacity: NodeCapacity | None = None, helpers: dict[str, Any] | None = None) -> dict[str, Any]:
    """What templates see. `secrets` (decrypted secret properties) join the plain ones here
    only, so they reach the processes that need them but never the stored spec; the same
    holds for the cluster's `credentials` (certificate, secret, token). Outputs are rendered
    without either, so no secret can end up in them."""
    nodes = live_nodes(cluster)
    props = {name: {**_secret_defaults(catalog, name), **values, **(secrets or {}).get(name, {})}
             for name, values in cluster.spec.get("properties", {}).items()}
    master = master_node(cluster)
    node_ctx: dict[str, Any] = ({"name": node.name, "role": node.role, "index": node.index, "host": node.host,
                                 "workdir": workdir} if node else {})
    capacity = capacity or (facts.capacity if facts else None)
    if node and capacity:
        node_ctx.update(memory_mb=capacity.memory_mb, cpus=capacity.cpus)
    ctx = {
        "cluster": {"id": cluster.id, "name": cluster.name,
                    "workers": sum(1 for n in nodes if n.role == "worker"),
                    "masters": masters_of(cluster)},
        # Which master a per_master process is (0 for every other process).
        "instance": {"index": 0, "count": masters_of(cluster)},
        "node": node_ctx,
        "master": {"host": master.host},
        "workers": [n.host for n in nodes if n.role == "worker"],
        "ports": {name: port.port for name, port in fw.ports.items()},
        "props": props.get(fw.name, {}),
        "frameworks": {name: {"props": props.get(name, {}),
                              "ports": {p: d.port for p, d in catalog.get(name).ports.items()}}
                       for name in cluster.spec.get("resolved_frameworks", [])},
        "credentials": credentials or {},
        **(_node_paths(facts) if facts else {}),
        # A dry run's stand-ins for render functions that would build, record or reserve.
        **(helpers or {}),
    }
    # Values a framework derives from the node's size, for nodes whose size is known.
    ctx["derived"] = derive(fw, ctx) if node and capacity else {}
    return ctx


def derive(fw: FrameworkDef, ctx: dict[str, Any]) -> dict[str, Any]:
    """The framework's `derived:` values in order, each seeing the ones before it; whole
    numbers as ints, so that templates can compute with them."""
    derived: dict[str, Any] = {}
    for name, template in fw.derived.items():
        text = str(render(template, {**ctx, "derived": derived})).strip()
        derived[name] = int(text) if text.lstrip("-").isdigit() else text
    return derived


def framework_overrides(cluster: Cluster, name: str) -> dict[str, dict[str, Any]]:
    """The user's raw overrides for a framework's configuration files (file -> key -> value)."""
    for request in cluster.spec.get("frameworks", []):
        if isinstance(request, dict) and request.get("name") == name:
            return request.get("overrides") or {}
    return {}


def render_config_file(config: ConfigFileDef, ctx: dict[str, Any], overrides: dict[str, Any]) -> str:
    """One configuration file: the framework's values rendered (framework defaults, values
    derived from the node, user properties: the templates choose), then the raw overrides on
    top, then written in the file's format."""
    values = render(config.values, ctx)
    if config.format != "yaml":
        values = {key: _flat_text(value) for key, value in values.items()}
        values = {key: value for key, value in values.items() if value != ""}
    return config_files.serialise(config.format, config_files.merge(config.format, values, overrides))


def _flat_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value).strip()


def node_config_files(cluster: Cluster, catalog: Catalog, fw: FrameworkDef, node: Node,
                      ctx: dict[str, Any]) -> dict[str, str]:
    """The framework's configuration files on this node (relative path -> text): those of the
    node's role, where the framework runs processes (their launches carry the files)."""
    if fw.roles.get(node.role) is None:  # type: ignore[call-overload]
        return {}
    overrides = framework_overrides(cluster, fw.name)
    return {config.path: render_config_file(config, ctx, overrides.get(name, {}))
            for name, config in fw.config_files.items() if node.role in config.roles}


def resolved_files(cluster: Cluster, catalog: Catalog, capacities: dict[str, NodeCapacity],
                   credentials: dict[str, str] | None = None,
                   facts: dict[str, NodeFacts] | None = None,
                   workdirs: dict[str, str] | None = None,
                   helpers: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, dict[str, str]]]:
    """Every node's configuration files as its processes will read them, per framework:
    node -> framework -> path -> text (what `plan` shows). Without `credentials` the
    cluster's secrets show as <hidden>; a node's directory shows as {workdir} unless given.
    `helpers`, per node, stand in for render functions (a dry run's, which build nothing)."""
    result: dict[str, dict[str, dict[str, str]]] = {}
    for node in live_nodes(cluster):
        per_framework: dict[str, dict[str, str]] = {}
        for name in cluster.spec.get("resolved_frameworks", []):
            fw = catalog.get(name)
            if not fw.config_files:
                continue
            ctx = context(cluster, catalog, fw, node, (workdirs or {}).get(node.name, "{workdir}"), None,
                          credentials or HIDDEN_CREDENTIALS,
                          (facts or {}).get(node.name), capacities.get(node.name), (helpers or {}).get(node.name))
            files = node_config_files(cluster, catalog, fw, node, ctx)
            if files:
                per_framework[name] = files
        result[node.name] = per_framework
    return result


def _node_paths(facts: NodeFacts) -> dict[str, Any]:
    """Render names that point at software, pointed at the node's own copy instead of the
    service manager's (they shadow the render globals of the same names)."""
    def module_dir(name: str) -> str:
        return f"{facts.site_packages}/{name}"

    def java_support(classpath: str) -> str:
        # Built here, against this machine's copy of the same packages; the jar travels to
        # the node inside DISCO's own wheel (disco.node.wheel), at the same place in it.
        from disco.frameworks import render as local
        package, _, rest = classpath.removeprefix(facts.site_packages + "/").partition("/")
        built = Path(local.java_support(f"{local.module_dir(package)}/{rest}"))
        inside = built.relative_to(Path(local.module_dir("disco")))
        return f"{facts.site_packages}/disco/{inside.as_posix()}"

    def spark_class_archive(role: str, java_opts: str) -> str:
        return ""  # archives are recorded where the service manager runs, not on this node

    paths = {"python": facts.python, "bin_dir": facts.bin_dir, "module_dir": module_dir,
             "java_support": java_support, "spark_class_archive": spark_class_archive}
    if facts.prefix:
        paths["software_dir"] = facts.prefix
    return paths


def build_shipped_software(cluster: Cluster, catalog: Catalog) -> None:
    """Render every process of the cluster once for a node elsewhere, so that what templates
    build here to ship inside disco's wheel (Spark's UI filter jar) exists before the wheel
    is made. The renders themselves are thrown away."""
    placeholder = NodeFacts(python="/", site_packages="/nowhere", bin_dir="/",
                            capacity=NodeCapacity(memory_bytes=4 << 30, cpus=2))
    credentials = {"tls_cert": "", "tls_key": "", "spark_secret": "", "token": ""}
    for name in cluster.spec.get("resolved_frameworks", []):
        for node in live_nodes(cluster):
            launches(cluster, catalog, catalog.get(name), node, "/nowhere", credentials=credentials,
                     facts=placeholder)


def node_needs(cluster: Cluster, catalog: Catalog, require_checksums: bool = True) -> NodeNeeds:
    """What every node of the cluster needs installed, from its frameworks' `install:`;
    Python packages pinned to the versions installed here, downloads from the admin's mirror
    (DISCO_DOWNLOAD_MIRROR) when one is set. Nodes on this machine fetch nothing, so for them
    a download need not have a checksum yet (`require_checksums=False`)."""
    names = cluster.spec.get("resolved_frameworks", [])
    os_packages: list[str] = []
    downloads: list[Download] = []
    for name in names:
        install = catalog.get(name).install
        os_packages += [p for p in install.os_packages if p not in os_packages]
        for d in install.downloads:
            url, sha256, sha512 = resolve_download(d, require_checksum=require_checksums)
            downloads.append(Download(url, sha256, d.dest, sha512, d.unpack))
    try:
        requirements = pinned_python_packages(catalog, names)
    except MissingPackage as exc:
        raise DiscoError(str(exc), code="missing_software") from None
    return NodeNeeds(tuple(os_packages), tuple(requirements), tuple(downloads))


def _secret_defaults(catalog: Catalog, name: str) -> dict[str, Any]:
    fw = catalog.get(name)
    return {key: fw.properties[key].default for key in fw.secret_properties()}


def launches(cluster: Cluster, catalog: Catalog, fw: FrameworkDef, node: Node, workdir: str,
             secrets: dict[str, dict[str, Any]] | None = None,
             credentials: dict[str, str] | None = None,
             facts: NodeFacts | None = None,
             capacity: NodeCapacity | None = None,
             helpers: dict[str, Any] | None = None) -> list[tuple[Launch, str | None]]:
    """The processes of one framework on one node, each with the address to wait for first;
    every process gets the framework's files and its configuration files for the node's role."""
    role = fw.roles.get(node.role)  # type: ignore[call-overload]
    if role is None:
        return []
    ctx = context(cluster, catalog, fw, node, workdir, secrets, credentials, facts, capacity, helpers)
    env = render(fw.env, ctx)
    files = {**render(fw.files, ctx), **node_config_files(cluster, catalog, fw, node, ctx)}
    result = []
    for proc in role.processes:
        for index in range(masters_of(cluster) if proc.per_master else 1):
            pctx = {**ctx, "instance": {"index": index, "count": masters_of(cluster)}}
            launch = Launch(name=instance_name(f"{fw.name}-{proc.name}", index),
                            argv=render(proc.command, pctx),
                            env={**env, **render(proc.env, pctx)}, preload=tuple(proc.preload),
                            after_fork=tuple(proc.after_fork),
                            files={**files, **render(proc.files, pctx)})
            result.append((launch, render(proc.wait_for_tcp, pctx) if proc.wait_for_tcp else None))
    return result


def client_access(cluster: Cluster, catalog: Catalog, credentials: dict[str, str]) -> dict[str, Any]:
    """Per framework, what a tenant's client needs to connect (its `client:` section rendered
    with the credentials). Secret: for the tenant's eyes only, never stored or logged."""
    result: dict[str, Any] = {}
    for name in cluster.spec.get("resolved_frameworks", []):
        fw = catalog.get(name)
        if fw.client is None:
            continue
        ctx = context(cluster, catalog, fw, None, credentials=credentials)
        result[name] = {"env": render(fw.client.env, ctx), "files": render(fw.client.files, ctx),
                        "file_env": dict(fw.client.file_env)}
    return result


def process_names(fw: FrameworkDef, role: str, masters: int = 1) -> list[str]:
    role_def = fw.roles.get(role)  # type: ignore[call-overload]
    return [instance_name(f"{fw.name}-{p.name}", i) for p in role_def.processes
            for i in range(masters if p.per_master else 1)] if role_def else []


def port_instances(fw: FrameworkDef, masters: int) -> list[tuple[str, int, PortDef]]:
    """The framework's ports (name, number, declaration): a per_master port once per master,
    the i-th (from 0) as port + i."""
    return [(instance_name(name, i), port.port + i, port) for name, port in fw.ports.items()
            for i in range(masters if port.per_master else 1)]


def outputs(cluster: Cluster, catalog: Catalog) -> dict[str, Any]:
    nodes = live_nodes(cluster)
    master = master_node(cluster)
    frameworks: dict[str, Any] = {}
    ports: set[int] = set()
    for name in cluster.spec.get("resolved_frameworks", []):
        fw = catalog.get(name)
        ctx = context(cluster, catalog, fw, None)
        entry: dict[str, Any] = dict(render(fw.outputs, ctx))
        web = {}
        for port_name, number, port in port_instances(fw, masters_of(cluster)):
            ports.add(number)
            if not port.web:
                continue
            hosts = [master] if port.role == "master" else [n for n in nodes if n.role == "worker"]
            for node in hosts:
                key = port_name if port.role == "master" else f"{port_name}@{node.name}"
                web[key] = f"{port.scheme}://{node.host}:{number}{port.path}"
        if web:
            entry["web_uis"] = web
        frameworks[name] = entry
    return {
        "master_host": master.host,
        "nodes": [{"name": n.name, "role": n.role, "host": n.host} for n in nodes],
        "frameworks": frameworks,
        "ports": sorted(ports),
    }
