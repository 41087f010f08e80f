"""Clusters on hosts an admin registered (the host pool), reached over SSH.

Each node of a cluster takes one whole host from the pool. What happens on the host is the
node's own business (`disco.node`): the provider renders the node's bundle, carries it there
with disco's own wheel and runs the bootstrap; from then on it speaks the node CLI over SSH
as every remote-node provider does (`remote_nodes.py`).

The provider knows nothing of the database: a `HostPool` (the service manager's, backed by
its store) hands out hosts and remembers which cluster holds which.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from disco.errors import Conflict, InvalidSpec
from disco.node.bootstrap import render_script
from disco.node.bundle import DiscoWheel, NodeBundle
from disco.node.wheel import planned_wheel_ref, self_wheel, wheel_ref
from disco.providers.base import (ClusterRef, NodeAddress, NodeCapacity, NodeFacts, NodeNeeds, NodeRef,
                                  PlannedNode, PlanRequest, ProviderError, ProviderPlan, ProviderResources)
from disco.providers.option_patterns import list_pattern, matches, text_option, unknown_options
from disco.providers.remote_nodes import HostSource, RemoteNodesProvider, last_lines, node_dir
from disco.providers.ssh_transport import HostSpec, SSHError, Transport, as_root

log = logging.getLogger(__name__)

BOOTSTRAP_TIMEOUT_S = 1800.0
BOOTSTRAP_TRIES = 3
BACKOFF_S = (2.0, 8.0)
STATUS_FRESH_S = 1.0


# What a cluster's spec may say about its hosts (`provider_options`), comma-separated lists.
OPTIONS = {"hosts": "names of the pool's hosts to use, master first",
           "labels": "labels every host used must carry"}
# A pool host's name (host_schemas.py: a name, or the address and port it defaults to) and label.
HOST_NAME = "[A-Za-z0-9][A-Za-z0-9._:-]{0,260}"
LABEL = "[A-Za-z0-9][A-Za-z0-9._-]{0,31}"
PATTERNS = {"hosts": list_pattern(HOST_NAME), "labels": list_pattern(LABEL)}
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {key: text_option(PATTERNS[key], f"{OPTIONS[key]}, comma-separated (no spaces)")
                   for key in OPTIONS},
    "description": "Provider ssh: which of the pool's hosts a cluster may take.",
}


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def option_problems(options: dict[str, str]) -> list[str]:
    """Everything wrong with the options (OPTIONS_SCHEMA says the same), none when they are good."""
    problems = unknown_options("ssh", options, OPTIONS)
    for key in OPTIONS:
        if key in options and not matches(PATTERNS[key], options[key]):
            problems.append(f"provider option {key} {options[key]!r} is not a comma-separated list (no spaces, "
                            f"no empty item) of {'host names' if key == 'hosts' else 'labels'}")
    return problems


class HostPool(HostSource, Protocol):
    """The service manager's pool, as the provider sees it."""

    def acquire(self, cluster_id: str, nodes: list[str]) -> dict[str, HostSpec]:
        """Hosts for these nodes: the ones they hold already, else free ones (atomically);
        raises ProviderError when the pool has too few."""

    def shortage(self, options: dict[str, str], needed: int) -> str | None:
        """Why `needed` more hosts of the kind these options ask for cannot be had now."""

    def preview(self, options: dict[str, str], nodes: list[str]) -> dict[str, tuple[HostSpec, dict[str, Any]]]:
        """The hosts `acquire` would hand these nodes now, taking none: node -> (host without
        its private key, what the host's last check found)."""


class SSHProvider(RemoteNodesProvider):
    name = "ssh"
    options_schema = OPTIONS_SCHEMA
    pool: HostPool

    def __init__(self, pool: HostPool, cache_dir: Path, *, index_url: str = "", wheelhouse: str = "") -> None:
        super().__init__(pool, cache_dir, index_url=index_url, wheelhouse=wheelhouse)

    @classmethod
    def from_resources(cls, resources: ProviderResources) -> "SSHProvider":
        if resources.host_pool is None:
            raise ProviderError("the ssh provider needs the service manager's host pool")
        return cls(resources.host_pool, resources.cache_dir, index_url=resources.node_index_url,
                   wheelhouse=resources.node_wheelhouse)

    def check_options(self, options: dict[str, str]) -> None:
        problems = option_problems(options)
        if problems:
            raise InvalidSpec("; ".join(problems), code="invalid_provider_option", details={"problems": problems})

    def check_capacity(self, options: dict[str, str], more_nodes: int) -> None:
        reason = self.pool.shortage(options, more_nodes)
        if reason:
            raise Conflict(reason, code="no_free_hosts")

    # -- hosts ---------------------------------------------------------------------------

    async def create_nodes(self, cluster: ClusterRef, nodes: list[NodeRef],
                           request: PlanRequest | None = None) -> list[NodeAddress]:
        hosts = await asyncio.to_thread(self.pool.acquire, cluster.id, [n.name for n in nodes])
        return [NodeAddress(n.name, hosts[n.name].address, f"{node_dir(hosts[n.name], cluster.id, n.name)}/work")
                for n in nodes]

    async def prepare_nodes(self, cluster: ClusterRef, nodes: list[NodeAddress], needs: NodeNeeds,
                            report: Callable[[str], None] | None = None) -> dict[str, NodeFacts]:
        hosts = self.pool.assigned(cluster.id)
        wheel = await asyncio.to_thread(self_wheel, self.cache_dir / "wheels")
        results = await asyncio.gather(*(self._prepare(cluster.id, node.name, hosts[node.name], needs, wheel, report)
                                         for node in nodes))
        return dict(zip([n.name for n in nodes], results))

    async def _prepare(self, cluster_id: str, node: str, host: HostSpec, needs: NodeNeeds, wheel: Path,
                       report: Callable[[str], None] | None) -> NodeFacts:
        bundle = self._bundle(cluster_id, node, host, needs, wheel)
        for attempt in range(BOOTSTRAP_TRIES):
            started = time.monotonic()
            try:
                steps = await self._bootstrap(host, bundle, wheel)
                break
            except SSHError as exc:
                if attempt + 1 == BOOTSTRAP_TRIES or not _worth_retrying(exc):
                    raise
                pause = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                if report:
                    report(f"{node} ({host.name}): {exc}; trying again in {pause:g} s")
                await asyncio.sleep(pause)
        if report:
            timings = ", ".join(f"{s['name']} {s['seconds']:.1f} s" + ("" if s.get("changed") else " (as it was)")
                                for s in steps)
            report(f"{node} ({host.name}) bootstrapped in {time.monotonic() - started:.1f} s: {timings}")
        return await self._facts(host)

    def _bundle(self, cluster_id: str, node: str, host: HostSpec, needs: NodeNeeds,
                wheel: Path | DiscoWheel) -> NodeBundle:
        return self.node_bundle(cluster_id, node, "master" if node == "master" else "worker", host.address,
                                host.prefix, needs, wheel if isinstance(wheel, DiscoWheel) else wheel_ref(wheel))

    def plan(self, request: PlanRequest) -> ProviderPlan:
        """The pool's hosts a create would take now (not reserved), and for each its bootstrap:
        the script and the bundle exactly as they would be sent (neither holds a secret)."""
        cluster_id = request.cluster.id
        chosen = self.pool.preview(request.options, [n.name for n in request.nodes])
        wheel = planned_wheel_ref(self.cache_dir / "wheels")
        nodes = []
        for ref in request.nodes:
            host, facts = chosen[ref.name]
            directory = node_dir(host, cluster_id, ref.name)
            bundle = self._bundle(cluster_id, ref.name, host, request.needs, wheel)
            version = ".".join(str(facts.get("python3") or "").split(".")[:2]) or "%d.%d" % sys.version_info[:2]
            venv = f"{host.prefix.rstrip('/')}/venv"
            memory, cpus = facts.get("memory_bytes"), facts.get("cpus")
            size = (NodeCapacity(memory_bytes=memory, cpus=cpus)
                    if isinstance(memory, int) and isinstance(cpus, int) and memory > 0 and cpus > 0 else None)
            nodes.append(PlannedNode(
                ref.name, host.address, f"{directory}/work",
                facts=NodeFacts(python=f"{venv}/bin/python", site_packages=f"{venv}/lib/python{version}/site-packages",
                                bin_dir=f"{venv}/bin", prefix=host.prefix, capacity=size),
                notes=[f"pool host {host.name}, free now and not reserved: a create takes it then",
                       "size as the host's last check found it; at create the node's own facts decide"
                       if size else "size unknown until the node is bootstrapped (check the host again to "
                                    "see it here): values derived from it are decided then"],
                details={"pool_host": {"name": host.name, "address": host.address, "port": host.port,
                                       "user": host.user, "prefix": host.prefix, "reserved": False,
                                       "last_check": facts},
                         "node_dir": directory, "log_port": bundle.log_port,
                         "bootstrap": {"script": render_script(bundle), "bundle": bundle.to_dict(),
                                       "uploads": [f"{directory}/{wheel.filename}", f"{directory}/bootstrap.sh"]}}))
        needs = request.needs
        install = [f"os packages: {', '.join(needs.os_packages) or 'none'}",
                   f"python packages: {', '.join(needs.python_requirements) or 'none'}",
                   f"downloads: {', '.join(d.url for d in needs.downloads) or 'none'}"]
        steps = [
            {"step": "provisioning", "what": "take from the pool, atomically: "
             + ", ".join(f"{n.name}={n.details['pool_host']['name']} ({n.host})" for n in nodes)},
            {"step": "install", "what": f"on all {len(nodes)} hosts in parallel (tried again after 2 and 8 s if a "
             f"host cannot be reached): upload disco's wheel {wheel.filename} and bootstrap.sh into the node "
             "directory, run it as root (sudo -n for another user): python3 and its venv from apt if missing, "
             "the venv, disco's wheel, then `disco.node install` (bundle, the cluster's user, "
             + "; ".join(install) + ", files), then the node's supervisor and its log server on port "
             f"{nodes[0].details['log_port'] if nodes else 8084} (the cluster's token)"},
            {"step": "install", "what": "ask each node its facts (python, site-packages, size) for the templates"},
        ]
        return ProviderPlan(
            nodes=nodes, steps=steps, reachable_from=[],
            reach_note="DISCO sets no firewall on SSH hosts: the ports are as reachable as the hosts' network makes "
                       "them (access.allowed_cidrs is not applied); the frameworks' own authentication with the "
                       "cluster's credentials decides who gets in",
            sections={"wheel": {"filename": wheel.filename, "sha256": wheel.sha256, "version": wheel.version}})

    async def _bootstrap(self, host: HostSpec, bundle: NodeBundle, wheel: Path) -> list[dict[str, Any]]:
        """Carry the wheel and the script there and run it: it installs what is missing and
        starts the node's supervisor. Its last line is the install's JSON report."""
        # The script takes the wheel from beside itself (and keeps it in the host's cache).
        await self.transport.acall(self.transport.upload(host, wheel.read_bytes(),
                                                         f"{bundle.node_dir}/{wheel.name}"))
        script = render_script(bundle)
        path = f"{bundle.node_dir}/bootstrap.sh"
        await self.transport.acall(self.transport.upload(host, script.encode(), path, 0o700))
        done = await self.transport.acall(self.transport.run(host, as_root(host, ["sh", path]),
                                                             timeout_s=BOOTSTRAP_TIMEOUT_S))
        if done.exit_code != 0:
            raise SSHError(f"{host.name}: bootstrap failed (exit {done.exit_code}): "
                           f"{last_lines(done.stderr or done.stdout)}")
        # Its stdout is the JSON answers of `install` (the steps) and `supervise`.
        for line in done.stdout.splitlines():
            try:
                answer = json.loads(line)
            except ValueError:
                continue
            if isinstance(answer, dict) and "steps" in answer:
                return list(answer["steps"])
        raise SSHError(f"{host.name}: the bootstrap reported no install steps: {last_lines(done.stdout)}")

async def clean_host(host: HostSpec, timeout_s: float = 300.0) -> list[str]:
    """Remove everything clusters left on a host that none of them holds (one quarantined after
    it could not be reached): each node directory is destroyed by the node CLI (its processes
    found by their mark, its user and files removed). The node directories removed."""
    prefix = shlex.quote(host.prefix.rstrip("/"))
    script = (f'for d in {prefix}/clusters/*/*; do [ -d "$d" ] || continue; '
              f'if [ -x {prefix}/venv/bin/python ]; then {prefix}/venv/bin/python -m disco.node destroy '
              '--node-dir "$d" >/dev/null || exit 1; else rm -rf "$d"; fi; echo "$d"; done; '
              f'rmdir {prefix}/clusters/* 2>/dev/null; true')
    transport = Transport()
    try:
        done = await transport.acall(transport.run(host, as_root(host, ["sh", "-c", script]), timeout_s=timeout_s))
    finally:
        await asyncio.to_thread(transport.close)
    if done.exit_code != 0:
        raise SSHError(f"{host.name}: removing what clusters left there failed: {last_lines(done.stderr)}")
    return done.stdout.split()


def _worth_retrying(exc: SSHError) -> bool:
    """A host that was unreachable or went away may be back; a wrong key, a changed host key
    or a bad checksum stays wrong until someone fixes it."""
    return exc.kind in ("unreachable", "lost") or (exc.kind == "remote" and "SHA-256" not in str(exc)
                                                   and "unix socket path" not in str(exc))


