"""`disco cluster plan` and `POST /api/v1/clusters?dry_run=true`: what a create would make,
touching nothing.

The request goes through the very checks of a create (`ClusterService.validate`: the same
errors, the same 4xx). Then, with nothing stored, started, reserved or written, the cluster a
create would store is built in memory and rendered as the lifecycle would render it: each
node's processes, environment and configuration files (with where every value comes from),
ports, readiness checks, outputs, and the provider's own part (`Provider.plan`: its nodes and
steps; SSH: the hosts it would take and each one's bootstrap). No secret exists yet, so none
can be shown: the cluster's credentials and secret properties render as <hidden>. Of the spec's
`cloud` (OpenStack), only `describe_cloud` is shown: where and as whom, never a password."""

from __future__ import annotations

import dataclasses
from typing import Any

from disco.cluster import plan
from disco.cluster.cloud_entry import describe_cloud
from disco.cluster.config_origins import file_origins
from disco.cluster.dry_run_render import stand_ins
from disco.cluster.lifecycle import NODE_LOG_PORT
from disco.cluster.models import Cluster, Node
from disco.cluster.service import ClusterService
from disco.cluster.spec import ClusterSpec, ResolvedSpec
from disco.errors import DiscoError
from disco.frameworks.catalog import Catalog
from disco.frameworks.render import render
from disco.cluster.provider_request import provider_request
from disco.providers.base import NodeNeeds, NodeRef, PlannedNode, Provider, ProviderPlan

# The cluster has no id before it is created: paths and bundles show this one instead.
PLACEHOLDER_ID = "new-cluster-id"
# Nor a token: the bundle's hash of it is this placeholder, shown as TOKEN_HASH_SHOWN.
TOKEN_HASH_PLACEHOLDER = "0" * 64
TOKEN_HASH_SHOWN = "<sha256 of the cluster's token, made at create>"
CREDENTIALS_NOTE = ("made at create and stored encrypted: an SSH key pair, a TLS certificate (Dask), a Spark "
                    "secret and a token (web UIs, Map/Reduce, Ray, node logs); shown here as <hidden>")


def plan_cluster(service: ClusterService, tenant: str, spec: ClusterSpec) -> dict[str, Any]:
    """The plan of a create of `spec` by `tenant`, or the error the create would raise."""
    provider_name, resolved = service.validate(tenant, spec)
    provider = service.lifecycle.provider(provider_name)
    catalog = service.catalog
    slot = service.store.free_slot(provider.slot_free)
    refs = [NodeRef("master", "master", 0)] + [NodeRef(f"worker-{i}", "worker", i)
                                               for i in range(1, spec.workers + 1)]
    cluster = Cluster(id=PLACEHOLDER_ID, tenant=tenant, name=spec.name or f"disco-{PLACEHOLDER_ID[:8]}",
                      provider=provider_name, spec=resolved.public_dict(), state="pending", target="running",
                      workers=spec.workers, slot=slot, outputs={})
    cluster.nodes = [Node(name=r.name, role=r.role, index=r.index, target="running", host="") for r in refs]
    problems: list[dict[str, str]] = []
    needs = _needs(cluster, catalog, provider, problems)
    provided = provider.plan(provider_request(cluster, catalog, needs))
    planned = {p.name: p for p in provided.nodes}
    for node in cluster.nodes:
        node.host = planned[node.name].host or f"<{node.name} address>"
    body = {
        "dry_run": True,
        "provider": provider_name,
        "cloud": describe_cloud(spec.cloud) if spec.cloud is not None else None,
        "name": spec.name,
        "workers": spec.workers,
        "frameworks": resolved.order,
        "spec": resolved.public_dict(),
        "properties": _properties(catalog, spec, resolved),
        "credentials": CREDENTIALS_NOTE,
        "nodes": [_node(cluster, catalog, spec, node, planned[node.name], provided, problems)
                  for node in cluster.nodes],
        "readiness": [_readiness(cluster, catalog, name, problems) for name in resolved.order],
        "outputs": _outputs(cluster, catalog, provider, problems),
        "access": {"allowed_cidrs": list(resolved.spec.access.allowed_cidrs),
                   "reachable_from": provided.reachable_from, "note": provided.reach_note},
        "steps": _steps(cluster, catalog, provided),
        "provider_plan": {k: v for k, v in provided.sections.items() if k != "template"},
        # A provider that renders a template (OpenStack: its Heat template) puts it here.
        "template": provided.sections.get("template"),
        "problems": problems,
    }
    return _without_placeholder_hash(body)


def _needs(cluster: Cluster, catalog: Catalog, provider: Provider, problems: list[dict[str, str]]) -> NodeNeeds:
    try:
        needs = plan.node_needs(cluster, catalog, require_checksums=provider.remote)
    except DiscoError as exc:  # a create would fail here, once its nodes exist
        problems.append({"where": "install", "code": exc.code, "message": exc.message})
        needs = NodeNeeds()
    return dataclasses.replace(needs, log_token_sha256=TOKEN_HASH_PLACEHOLDER)


def _properties(catalog: Catalog, spec: ClusterSpec, resolved: ResolvedSpec) -> dict[str, dict[str, Any]]:
    """Every framework's properties (dependencies included), each with its value and whether
    the user set it or it is the framework's default; secret ones hidden."""
    given = {fw.name: fw.properties for fw in spec.frameworks}
    result: dict[str, dict[str, Any]] = {}
    for name in resolved.order:
        fw = catalog.get(name)
        secret = fw.secret_properties()
        result[name] = {
            key: {"value": plan.HIDDEN if key in secret else resolved.properties[name].get(key),
                  "origin": "user" if key in given.get(name, {}) else "default",
                  **({"secret": True} if key in secret else {})}
            for key in fw.properties}
    return result


def _hidden_secrets(catalog: Catalog, cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {name: {key: plan.HIDDEN for key in catalog.get(name).secret_properties()}
            for name in cluster.spec.get("resolved_frameworks", [])}


def _node(cluster: Cluster, catalog: Catalog, spec: ClusterSpec, node: Node, planned: PlannedNode,
          provided: ProviderPlan, problems: list[dict[str, str]]) -> dict[str, Any]:
    capacity = planned.capacity or (planned.facts.capacity if planned.facts else None)
    helpers = stand_ins(planned.facts)
    secrets = _hidden_secrets(catalog, cluster)
    user_set = {(fw.name, key) for fw in spec.frameworks for key in fw.properties}
    processes: list[dict[str, Any]] = []
    files: dict[str, dict[str, Any]] = {}
    config_texts: dict[str, dict[str, str]] = {}
    try:
        config_texts = plan.resolved_files(cluster, catalog, {node.name: capacity} if capacity else {},
                                           facts={node.name: planned.facts} if planned.facts else None,
                                           workdirs={node.name: planned.workdir},
                                           helpers={node.name: helpers}).get(node.name, {})
    except (DiscoError, TypeError, ValueError):
        pass  # said per framework below
    for name in cluster.spec.get("resolved_frameworks", []):
        fw = catalog.get(name)
        if fw.roles.get(node.role) is None:  # type: ignore[call-overload]
            continue
        if fw.derived and capacity is None:
            problems.append({"where": f"{node.name}/{name}", "code": "size_unknown",
                             "message": f"{name} sizes its settings from the node, whose size is known only once "
                                        "the node exists (bootstrapped): its processes and files are not shown"})
            continue
        try:
            launches = plan.launches(cluster, catalog, fw, node, planned.workdir, secrets=secrets,
                                     credentials=plan.HIDDEN_CREDENTIALS, facts=planned.facts,
                                     capacity=capacity, helpers=helpers)
            ctx = plan.context(cluster, catalog, fw, node, planned.workdir, secrets, plan.HIDDEN_CREDENTIALS,
                               planned.facts, capacity, helpers)
            origins = file_origins(cluster, fw, node, ctx, user_set)
        except (DiscoError, TypeError, ValueError) as exc:
            problems.append({"where": f"{node.name}/{name}", "code": getattr(exc, "code", "template_error"),
                             "message": getattr(exc, "message", str(exc))})
            continue
        fw_files: dict[str, Any] = {}
        for launch, wait_for in launches:
            processes.append({"framework": name, "name": launch.name, "command": launch.argv, "env": launch.env,
                              **({"wait_for_tcp": wait_for} if wait_for else {})})
            for path, text in launch.files.items():
                entry: dict[str, Any] = {"text": config_texts.get(name, {}).get(path, text)}
                if path in origins:
                    entry["keys"] = origins[path]
                fw_files[path] = entry
        if fw_files:
            files[name] = dict(sorted(fw_files.items()))
    reachable = provided.reachable_from
    ports = [{"framework": name, "name": port_name, "port": number, "scheme": port.scheme,
              "description": port.description, "reachable_from": reachable}
             for name in cluster.spec.get("resolved_frameworks", [])
             for port_name, number, port in plan.port_instances(catalog.get(name), plan.masters_of(cluster))
             if port.role == node.role]
    if "log_port" in planned.details:  # the node supervisor's log server (the cluster's token)
        ports.append({"framework": "disco", "name": "node_logs", "port": planned.details["log_port"],
                      "scheme": "http", "description": "the node's deployment and process logs (the cluster's token)",
                      "reachable_from": reachable})
    return {
        "name": node.name, "role": node.role,
        "host": planned.host, "workdir": planned.workdir,
        "size": {"memory_mb": capacity.memory_mb, "cpus": capacity.cpus} if capacity else None,
        "notes": planned.notes,
        "processes": processes,
        "files": files,
        "ports": ports,
        "provider": planned.details,
    }


def _readiness(cluster: Cluster, catalog: Catalog, name: str, problems: list[dict[str, str]]) -> dict[str, Any]:
    fw = catalog.get(name)
    check = fw.readiness
    entry: dict[str, Any] = {"framework": name, "kind": check.kind, "timeout_s": check.timeout_s}
    try:
        ctx = plan.context(cluster, catalog, fw, None, credentials=plan.HIDDEN_CREDENTIALS, helpers=stand_ins(None))
        if check.url or check.urls:
            entry["urls"] = render({"url": check.url} if check.url else check.urls, ctx)
        if check.command:
            entry["command"] = render(check.command, ctx)
    except DiscoError as exc:
        problems.append({"where": f"readiness/{name}", "code": exc.code, "message": exc.message})
    if check.ready_when:
        entry["ready_when"] = check.ready_when
    return entry


def _outputs(cluster: Cluster, catalog: Catalog, provider: Provider,
             problems: list[dict[str, str]]) -> dict[str, Any]:
    try:
        outputs = plan.outputs(cluster, catalog)
    except DiscoError as exc:
        problems.append({"where": "outputs", "code": exc.code, "message": exc.message})
        return {}
    if provider.remote:
        outputs["node_logs"] = {n.name: f"http://{n.host}:{NODE_LOG_PORT}/" for n in plan.live_nodes(cluster)}
    return outputs


def _steps(cluster: Cluster, catalog: Catalog, provided: ProviderPlan) -> list[dict[str, str]]:
    """A create's steps in order: stored, the provider's own, each framework, ready."""
    nodes = plan.live_nodes(cluster)
    steps = [{"step": "pending", "what": "store the cluster, its nodes and its credentials (encrypted); answer 201"}]
    steps += provided.steps
    for name in cluster.spec.get("resolved_frameworks", []):
        fw = catalog.get(name)
        master = plan.process_names(fw, "master", plan.masters_of(cluster))
        workers = plan.process_names(fw, "worker") if any(n.role == "worker" for n in nodes) else []
        parts = []
        if master:
            parts.append(f"start on master: {', '.join(master)}")
        if workers:
            waits = [p.wait_for_tcp for p in fw.roles["worker"].processes if p.wait_for_tcp]
            parts.append(f"then on every worker at once: {', '.join(workers)}"
                         + (" (each waiting for the master's port first)" if waits else ""))
        check = fw.readiness
        parts.append("no readiness check" if check.kind == "none" else
                     f"{'then ' if parts else ''}its readiness check ({check.kind}) until it holds, "
                     f"at most {check.timeout_s:g} s")
        steps.append({"step": name, "what": "; ".join(parts)})
    steps.append({"step": "ready", "what": "outputs written (addresses, web UIs); the cluster is ready"})
    return steps


def _without_placeholder_hash(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(TOKEN_HASH_PLACEHOLDER, TOKEN_HASH_SHOWN) if TOKEN_HASH_PLACEHOLDER in value else value
    if isinstance(value, list):
        return [_without_placeholder_hash(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_placeholder_hash(item) for key, item in value.items()}
    return value
