"""What every provider whose nodes are remote machines does the same way: a node is a host
reached over SSH, where disco's node CLI (`python -m disco.node`) runs as root and answers in
JSON — `start`, `status`, `stop`, `destroy`, `log`, `run`, `facts` — secrets on stdin only.
The node's supervisor outlives the SSH session and the service manager; it knows its cluster,
so a restarted service manager finds everything again by asking it.

Where hosts come from is the concrete provider's business (the SSH provider: the admin's pool;
the OpenStack provider: the cluster's stack), behind a `HostSource`. How a host got its node
bootstrap is too (over SSH, or by cloud-init)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any, Protocol

from disco.node.bundle import DiscoWheel, Download as BundleDownload, NodeBundle, PythonEnv
from disco.providers.base import (ClusterRef, Launch, NodeAddress, NodeCapacity, NodeFacts, NodeNeeds, ProcessState,
                                  ProcessStatus, Provider)
from disco.providers.ssh_transport import HostSpec, SSHError, Transport, as_root

STATUS_FRESH_S = 1.0


class HostSource(Protocol):
    """Where a remote-node provider's hosts come from, and which cluster holds which."""

    def assigned(self, cluster_id: str) -> dict[str, HostSpec]:
        """node name -> host, for every node of the cluster that holds one."""

    def release(self, cluster_id: str, nodes: list[str] | None = None) -> None:
        """The hosts of these nodes (all of the cluster's when None) are clean: give them back."""

    def quarantine(self, cluster_id: str, nodes: list[str], reason: str) -> None:
        """Take hosts from the cluster without freeing them: they could not be cleaned."""

    def clusters(self) -> set[str]:
        """Ids of clusters that hold hosts."""


class RemoteNodesProvider(Provider):
    """A provider's node operations over SSH; subclasses make and bootstrap the hosts."""

    remote = True

    def __init__(self, pool: HostSource, cache_dir: Path, *, index_url: str = "", wheelhouse: str = "") -> None:
        self.pool = pool
        self.cache_dir = Path(cache_dir)
        # Where nodes take Python packages from on a private network (else their pip's index).
        self.index_url = index_url
        self.wheelhouse = wheelhouse
        self.transport = Transport()
        # (cluster, node) -> when asked, the node's processes as its supervisor described them.
        self._status: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def close(self) -> None:
        self.transport.close()

    async def node_facts(self, cluster: ClusterRef, node: str) -> NodeFacts | None:
        host = self.pool.assigned(cluster.id).get(node)
        return None if host is None else await self._facts(host)

    async def _facts(self, host: HostSpec) -> NodeFacts:
        return node_facts_of(await self._node_cli(host, ["facts"]), host.prefix)

    def node_bundle(self, cluster_id: str, node: str, role: str, host: str, prefix: str, needs: NodeNeeds,
                    wheel: DiscoWheel) -> NodeBundle:
        """What a node installs for a cluster (disco.node), however it gets there: carried over
        SSH, or in a cloud server's user_data (`host` then a placeholder Heat fills)."""
        return NodeBundle(
            cluster_id=cluster_id, node=node, role=role, host=host, prefix=prefix,
            os_packages=list(needs.os_packages),
            python=PythonEnv(requirements=list(needs.python_requirements), index_url=self.index_url or None,
                             wheelhouse=self.wheelhouse or None),
            downloads=[BundleDownload(d.url, d.sha256, d.dest, d.sha512, d.unpack) for d in needs.downloads],
            disco_wheel=wheel, log_token_sha256=needs.log_token_sha256)

    # -- processes -------------------------------------------------------------------------

    async def start_process(self, cluster: ClusterRef, node: NodeAddress, launch: Launch) -> int:
        host = self._host(cluster.id, node.name)
        body = {"name": launch.name, "argv": launch.argv, "env": launch.env, "files": launch.files}
        self._status.pop((cluster.id, node.name), None)
        answer = await self._node_cli(host, ["start", "--node-dir", node_dir(host, cluster.id, node.name)],
                                      stdin=json.dumps(body))
        return int(answer["pid"])

    async def process_status(self, cluster: ClusterRef, node: str, process: str) -> ProcessStatus:
        # One `status` answers for all of a node's processes; the lifecycle asks process by
        # process (and often, while it waits for readiness), so an answer serves a moment.
        key = (cluster.id, node)
        seen = self._status.get(key)
        if seen is None or time.monotonic() - seen[0] > STATUS_FRESH_S:
            host = self._host(cluster.id, node)
            answer = await self._node_cli(host, ["status", "--node-dir", node_dir(host, cluster.id, node)])
            seen = self._status[key] = (time.monotonic(), dict(answer.get("processes", {})))
        entry = seen[1].get(process)
        if entry is None:
            return ProcessStatus(ProcessState.MISSING)
        return ProcessStatus(supervisor_state(entry), entry.get("exit_code"), entry.get("pid"))

    async def stop_node(self, cluster: ClusterRef, node: str, grace_s: float) -> None:
        self._status.pop((cluster.id, node), None)
        host = self.pool.assigned(cluster.id).get(node)
        if host is None:
            return
        await self._node_cli(host, ["stop", "--node-dir", node_dir(host, cluster.id, node), "--grace", str(grace_s)],
                             timeout_s=grace_s + 30, missing_ok=True)

    async def destroy_nodes(self, cluster: ClusterRef, nodes: list[str]) -> list[str]:
        hosts = self.pool.assigned(cluster.id)
        return await self._destroy_all(cluster.id, {node: hosts[node] for node in nodes if node in hosts})

    async def destroy_cluster(self, cluster_id: str) -> list[str]:
        return await self._destroy_all(cluster_id, self.pool.assigned(cluster_id))

    async def _destroy_all(self, cluster_id: str, hosts: dict[str, HostSpec]) -> list[str]:
        """Clean every host and give it back. A host that cannot be reached (or refuses us) is
        quarantined: out of the cluster but not free, until an admin's `disco hosts check`
        reaches it and removes what is left there. Any other failure (something survived)
        raises, for the next attempt."""
        nodes = list(hosts)
        for node in nodes:
            self._status.pop((cluster_id, node), None)
        results = await asyncio.gather(*(self._destroy(cluster_id, node, hosts[node]) for node in nodes),
                                       return_exceptions=True)
        clean = [node for node, result in zip(nodes, results) if result is None]
        if clean:
            await asyncio.to_thread(self.pool.release, cluster_id, clean)
        for node in nodes:
            self.transport.hang_up(hosts[node])
        notes, failures = [], []
        for node, result in zip(nodes, results):
            if isinstance(result, SSHError) and result.host_unusable:
                reason = (f"{result} — it may still hold processes or files of cluster {cluster_id}, "
                          "removed by the next successful `disco hosts check`")
                await asyncio.to_thread(self.pool.quarantine, cluster_id, [node], reason)
                notes.append(f"{node} ({hosts[node].name}) could not be cleaned and is quarantined: {result}")
            elif isinstance(result, BaseException):
                failures.append(result)
        for failure in failures:
            if not isinstance(failure, SSHError):
                raise failure
        if failures:
            raise SSHError("; ".join(str(f) for f in failures))
        return notes

    async def _destroy(self, cluster_id: str, node: str, host: HostSpec) -> None:
        """Everything of the cluster goes from the host; `destroy` answers with what its /proc
        scan still found, which must be nothing before the host goes back to the pool."""
        answer = await self._node_cli(host, ["destroy", "--node-dir", node_dir(host, cluster_id, node)],
                                      timeout_s=120, missing_ok=True)
        left = answer.get("left") or []
        if left:
            raise SSHError(f"{host.name}: processes of cluster {cluster_id} survived destroy: {left}")

    def cluster_ids(self) -> set[str]:
        return self.pool.clusters()

    async def run_command(self, cluster: ClusterRef, node: NodeAddress, argv: list[str],
                          env: dict[str, str], timeout_s: float) -> tuple[int, str]:
        host = self._host(cluster.id, node.name)
        answer = await self._node_cli(host, ["run", "--node-dir", node_dir(host, cluster.id, node.name)],
                                      stdin=json.dumps({"argv": argv, "env": env, "timeout_s": timeout_s}),
                                      timeout_s=timeout_s + 30)
        return int(answer["exit_code"]), str(answer.get("output", ""))

    def log_names(self, cluster_id: str) -> list[tuple[str, str]]:
        names = []
        for node, host in self.pool.assigned(cluster_id).items():
            try:
                answer = self.transport.call(self._node_cli_on_loop(
                    host, ["status", "--node-dir", node_dir(host, cluster_id, node)], missing_ok=True))
            except SSHError:
                continue
            names += [(node, process) for process in sorted(answer.get("processes", {}))]
        return names

    def read_log(self, cluster_id: str, node: str, process: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        host = self.pool.assigned(cluster_id).get(node)
        if host is None:
            return b""
        answer = self.transport.call(self._node_cli_on_loop(
            host, ["log", "--node-dir", node_dir(host, cluster_id, node), process,
                   "--offset", str(offset), "--limit", str(limit)], missing_ok=True))
        return base64.b64decode(answer.get("data", ""))

    # -- the node CLI ------------------------------------------------------------------------

    def _host(self, cluster_id: str, node: str) -> HostSpec:
        host = self.pool.assigned(cluster_id).get(node)
        if host is None:
            raise SSHError(f"node {node} of cluster {cluster_id} holds no host")
        return host

    async def _node_cli(self, host: HostSpec, args: list[str], *, stdin: str = "", timeout_s: float = 120.0,
                        missing_ok: bool = False) -> dict[str, Any]:
        return await self.transport.acall(self._node_cli_on_loop(host, args, stdin=stdin, timeout_s=timeout_s,
                                                                 missing_ok=missing_ok))

    async def _node_cli_on_loop(self, host: HostSpec, args: list[str], *, stdin: str = "",
                                timeout_s: float = 120.0, missing_ok: bool = False) -> dict[str, Any]:
        python = f"{host.prefix}/venv/bin/python"
        done = await self.transport.run(host, as_root(host, [python, "-m", "disco.node", *args]),
                                        stdin=stdin, timeout_s=timeout_s)
        if done.exit_code == 127 and missing_ok:  # never bootstrapped: nothing is there
            return {}
        try:
            answer = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        except ValueError:
            answer = {}
        if done.exit_code != 0:
            reason = answer.get("error") or last_lines(done.stderr)
            raise SSHError(f"{host.name}: disco.node {args[0]} failed (exit {done.exit_code}): {reason}")
        return answer


# The node supervisor's states as the lifecycle sees them: alive (about to run, or still
# shutting down) or not.
_STATES = {"running": ProcessState.RUNNING, "starting": ProcessState.RUNNING, "stopping": ProcessState.RUNNING}
# `backoff` is a crash the supervisor is about to retry. The first crash in a row counts as
# still alive: a daemon that gives up after a fixed wait when its host is slow (Ray's worker
# waits 30 s for its registration, then exits) gets its second chance without failing the
# cluster; a second crash in a row is the failure it is (a bad configuration fails in seconds).
FORGIVEN_CRASHES = 1


def supervisor_state(entry: dict[str, Any]) -> ProcessState:
    if entry["state"] == "backoff" and int(entry.get("restarts") or 0) <= FORGIVEN_CRASHES:
        return ProcessState.RUNNING
    return _STATES.get(entry["state"], ProcessState.EXITED)


def node_facts_of(answer: dict[str, Any], prefix: str) -> NodeFacts:
    """What the service manager keeps of a node's `facts` answer: its paths, and its size when
    the node reports one (an older node's disco does not)."""
    memory, cpus = answer.get("memory_bytes"), answer.get("cpus")
    known = isinstance(memory, int) and isinstance(cpus, int) and memory > 0 and cpus > 0
    return NodeFacts(python=answer["python"], site_packages=answer["site_packages"], bin_dir=answer["bin_dir"],
                     prefix=answer.get("node_prefix") or prefix,
                     capacity=NodeCapacity(memory_bytes=memory, cpus=cpus) if known else None)


def node_dir(host: HostSpec, cluster_id: str, node: str) -> str:
    return f"{host.prefix.rstrip('/')}/clusters/{cluster_id}/{node}"


def last_lines(text: str, lines: int = 5) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())[-800:]
