"""Clusters on an OpenStack cloud, one Heat stack per cluster (docs/openstack.md).

The stack is the cluster's whole infrastructure: network, security group, key pair, the master
and a group of workers, each server booting the node bootstrap from its user_data (cloud-init).
Once a node has installed everything it signals its `booted` wait condition with its SSH host
key; the provider reads the key from Heat and pins it, and from then on a node is a host reached
over SSH like any other remote node (remote_nodes.py: start, status, stop, logs through the node
CLI): the master at its floating IP, the workers through it when it has one (they have only
their private addresses). When every framework is ready, each node signals its `ready` wait condition (the master
last), so the stack completes only with a working cluster.

Nothing is kept here that Heat does not keep: after a restart of the service manager the stack
is found again by its name, the nodes' addresses and host keys are read from it again. The
cloud's credentials come sealed from the service manager (ClusterAccess), opened per use."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from keystoneauth1 import exceptions as ks_exc

from disco.errors import ProviderError
from disco.node.bootstrap import render_script
from disco.node.bundle import DiscoWheel
from disco.node.wheel import planned_wheel_ref, self_wheel, wheel_ref
from disco.providers.base import (ClusterAccess, ClusterRef, NodeAddress, NodeFacts, NodeRef, PlannedNode,
                                  PlanRequest, ProviderPlan, ProviderResources)
from disco.providers.openstack.design import PortRule, StackDesign, UserData
from disco.providers.openstack.heat_client import CLOUD_ERRORS, HeatError, HeatStacks, connect
from disco.providers.openstack.keys import generate_key_pair
from disco.providers.openstack.options import OPTIONS_SCHEMA, StackChoices, read_options, stack_design
from disco.providers.openstack.placeholders import NODE_IP, NODE_NAME
from disco.providers.openstack.stack_nodes import StackNode, stack_nodes
from disco.providers.openstack.template import render, render_files, stack_parameters
from disco.providers.openstack.user_data import SIGNAL_READY, node_user_data
from disco.providers.remote_nodes import RemoteNodesProvider
from disco.providers.ssh_transport import HostSpec, SSHError, as_root

log = logging.getLogger(__name__)
T = TypeVar("T")

PREFIX = "/opt/disco"
MAX_WORKERS = 64
POLL_S = 2.0
REFUSED_PAUSE_S = 30.0  # StackHosts.refused_at
# How long Heat may take to make the servers' ports (the addresses), and to settle a change.
ADDRESS_TIMEOUT_S = 300.0
SETTLE_TIMEOUT_S = 900.0
# Once every node has signalled ready, Heat has nothing left to wait for but its own bookkeeping.
READY_SETTLE_TIMEOUT_S = 300.0


def stack_name(cluster_id: str) -> str:
    """One stack per cluster, found again by this name after a restart."""
    return f"disco-{cluster_id}"


@dataclass
class ClusterStack:
    """What the provider holds of one cluster's stack in memory (all of it can be read again)."""

    stacks: HeatStacks
    stack_id: str
    user: str
    private_key: str
    # How long a node may take to boot (the wait conditions' timeout).
    timeout_s: int
    # The master has a floating IP: the service manager reaches it there and the workers,
    # which have only their private addresses, through it (an SSH jump).
    behind_master: bool
    hosts: dict[str, HostSpec] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


class StackHosts:
    """The HostSource of remote_nodes over clusters' stacks: a node's host is its server, known
    once it has signalled `booted` (its host key pinned)."""

    def __init__(self, access: ClusterAccess) -> None:
        self.access = access
        self.known: dict[str, ClusterStack] = {}
        # Clusters whose stack create was refused before anything was made (this process saw it).
        self.never_made: set[str] = set()
        # When a cluster's login was last refused: `assigned` is asked from the event loop, and
        # each refused login is a blocking round trip to Keystone; asked again after a pause.
        self.refused_at: dict[str, float] = {}

    def load(self, cluster_id: str) -> ClusterStack | None:
        """The cluster's stack as Heat has it (after a restart); None when it has no stack."""
        if cluster_id in self.known:
            return self.known[cluster_id]
        if cluster_id in self.never_made:
            # Its create was refused before anything was made: no stack to look for. Asking
            # would also log in again at each question (a refused login is a blocking round
            # trip to Keystone, and the questions come from the event loop).
            return None
        cloud = self.access.cloud(cluster_id)
        if not cloud:
            return None
        stacks = HeatStacks(connect(cloud))
        stack_id = stacks.find(stack_name(cluster_id))
        if stack_id is None:
            return None
        choices = read_options(self.access.options(cluster_id))
        record = ClusterStack(stacks, stack_id, choices.user, self.access.ssh_key(cluster_id)[1], choices.timeout_s,
                              choices.floating_ip)
        pin_hosts(cluster_id, record, [n for n in stack_nodes(stacks, stack_id).values() if n.is_booted])
        self.known[cluster_id] = record
        return record

    # -- HostSource ------------------------------------------------------------------------

    def assigned(self, cluster_id: str) -> dict[str, HostSpec]:
        # After a restart the first question (a periodic health check) reads the stack from
        # Heat here, once, synchronously: a few requests to the cloud's API.
        if time.monotonic() - self.refused_at.get(cluster_id, -REFUSED_PAUSE_S) < REFUSED_PAUSE_S:
            return {}
        try:
            record = self.load(cluster_id)
        except (HeatError, *CLOUD_ERRORS) as exc:
            log.warning("cluster %s: cannot read its stack: %s", cluster_id, exc)
            if getattr(exc, "made_nothing", False):
                self.refused_at[cluster_id] = time.monotonic()
            return {}
        self.refused_at.pop(cluster_id, None)
        return dict(record.hosts) if record else {}

    def release(self, cluster_id: str, nodes: list[str] | None = None) -> None:
        record = self.known.get(cluster_id)
        if record is None:
            return
        for node in list(record.hosts) if nodes is None else nodes:
            record.hosts.pop(node, None)

    def quarantine(self, cluster_id: str, nodes: list[str], reason: str) -> None:
        self.release(cluster_id, nodes)  # the servers go with the stack: nothing to keep apart

    def clusters(self) -> set[str]:
        return set(self.known)


def pin_hosts(cluster_id: str, record: ClusterStack, nodes: list[StackNode]) -> None:
    """The booted nodes become hosts with the host keys they sent; the master first, as the
    workers may be reached through it."""
    for node in sorted(nodes, key=lambda n: n.name != "master"):
        host = host_of(cluster_id, record, node)
        if host is not None:
            record.hosts[node.name] = host


def host_of(cluster_id: str, record: ClusterStack, node: StackNode) -> HostSpec | None:
    """None: a worker behind a master that is not reached yet."""
    behind = record.behind_master and node.name != "master"
    via = record.hosts.get("master") if behind else None
    if behind and via is None:
        return None
    # Only the master has a public (floating) address.
    return HostSpec(name=f"{node.name} of {stack_name(cluster_id)}", address=node.public_address or node.address,
                    port=22, user=record.user, private_key=record.private_key, host_key=node.host_key,
                    prefix=PREFIX, via=via)


class OpenStackProvider(RemoteNodesProvider):
    name = "openstack"
    options_schema = OPTIONS_SCHEMA
    # The stack's create or update request, then Heat's addresses for its servers.
    provision_timeout_s = ADDRESS_TIMEOUT_S + 60.0
    pool: StackHosts

    def __init__(self, access: ClusterAccess, cache_dir: Path, public_url: str, *, index_url: str = "",
                 wheelhouse: str = "") -> None:
        super().__init__(StackHosts(access), cache_dir, index_url=index_url, wheelhouse=wheelhouse)
        self.access = access
        self.public_url = public_url.rstrip("/")

    @classmethod
    def from_resources(cls, resources: ProviderResources) -> "OpenStackProvider":
        if resources.cluster_access is None:
            raise ProviderError("the openstack provider needs the service manager's cluster access")
        return cls(resources.cluster_access, resources.cache_dir, resources.public_url,
                   index_url=resources.node_index_url, wheelhouse=resources.node_wheelhouse)

    def check_options(self, options: dict[str, str]) -> None:
        read_options(options)

    # -- the stack ----------------------------------------------------------------------------

    async def create_nodes(self, cluster: ClusterRef, nodes: list[NodeRef],
                           request: PlanRequest | None = None) -> list[NodeAddress]:
        """Makes the stack (or finds it; resumes it if suspended; grows it for more workers)
        and answers once Heat has given every node its address."""
        try:
            record = await asyncio.to_thread(self.pool.load, cluster.id)
        except (HeatError, *CLOUD_ERRORS) as exc:
            # The login was refused before any stack was looked for. A cluster this process
            # never saw a stack of made none with it (a stack made before a restart, with a
            # password changed since, is the one case this misses).
            if getattr(exc, "made_nothing", False) and cluster.id not in self.pool.known:
                self.pool.never_made.add(cluster.id)
            raise ProviderError(_cloud_error(exc)) from None
        if record is not None:
            state = await _cloud(record.stacks.state, record.stack_id)
            if state is None or state.failed:  # a failed create is made again (a retry)
                await self._delete_stack(cluster.id)
                record = None
            elif state.status == "SUSPEND_COMPLETE":
                await self._settle(cluster.id, record, lambda: record.stacks.resume(record.stack_id), "RESUME")
        if record is None:
            if request is None:
                raise ProviderError(f"cluster {cluster.id} has no stack, and nothing to make one from")
            record = await self._create_stack(cluster, request)
        wanted = max([_worker_number(n.name) for n in nodes if n.role == "worker"], default=0)
        have = int((await _cloud(record.stacks.parameters, record.stack_id)).get("worker_count", 0))
        if wanted > have:
            timeout_mins = self._timeout_mins(request)
            await _cloud(record.stacks.scale, record.stack_id, {"worker_count": wanted}, timeout_mins)
        found = await self._wait_nodes(cluster.id, record, [n.name for n in nodes], lambda n: bool(n.address),
                                       ADDRESS_TIMEOUT_S, "an address")
        return [NodeAddress(n.name, found[n.name].address, f"{PREFIX}/clusters/{cluster.id}/{n.name}/work")
                for n in nodes]

    async def prepare_nodes(self, cluster: ClusterRef, nodes: list[NodeAddress], needs: Any,
                            report: Callable[[str], None] | None = None) -> dict[str, NodeFacts]:
        """The nodes install themselves (cloud-init); this waits for each one's `booted`
        signal, pins the host key it sent, and asks the node its facts over SSH."""
        record = self._record(cluster.id)
        started = time.monotonic()
        names = [n.name for n in nodes]
        # Behind a floating IP, the master must have it before anyone is reached.
        master_reached = (lambda n: n.name != "master" or not record.behind_master or bool(n.public_address))
        found = await self._wait_nodes(cluster.id, record, names, lambda n: n.is_booted and master_reached(n),
                                       record.timeout_s + 60.0, "its booted signal", report)
        pin_hosts(cluster.id, record, [found[name] for name in names])
        unreached = [name for name in names if name not in record.hosts]
        if unreached:
            raise ProviderError(f"{', '.join(unreached)}: reached through the master, which has not booted")
        if report:
            report(f"{len(nodes)} node(s) booted and installed (cloud-init) in {time.monotonic() - started:.1f} s; "
                   "host keys from Heat pinned")
        facts = await asyncio.gather(*(self._facts(record.hosts[n.name]) for n in nodes))
        return dict(zip([n.name for n in nodes], facts))

    async def nodes_ready(self, cluster: ClusterRef, nodes: list[NodeAddress],
                          report: Callable[[str], None] | None = None) -> None:
        """Each node not yet `ready` in Heat signals it, the workers first and the master last
        (it has seen them all); then the stack completes, or says why not."""
        record = self._record(cluster.id)
        current = await _cloud(stack_nodes, record.stacks, record.stack_id)
        todo = [n.name for n in nodes if not current.get(n.name, StackNode(n.name)).ready.endswith("_COMPLETE")]
        workers = [name for name in todo if name != "master"]
        await asyncio.gather(*(self._signal_ready(record, name) for name in workers))
        if "master" in todo:
            await self._signal_ready(record, "master")
        state = await _cloud(record.stacks.state, record.stack_id)
        if state is not None and state.in_progress:
            started = time.monotonic()
            state = await _cloud(record.stacks.wait, record.stack_id, state.action, READY_SETTLE_TIMEOUT_S)
            if report and state is not None:
                report(f"stack {state.name} {state.status} ({time.monotonic() - started:.1f} s after the "
                       f"ready signals of {', '.join(todo) or 'no node'})")
        if state is None or state.failed:
            await self._fail_stack(cluster.id, record, report)
        record.outputs = {"stack_id": state.id, "stack_name": state.name, "stack_status": state.status,
                          **{k: state.outputs.get(k) for k in ("external_ip", "ssh_key_name", "ssh_public_key")}}

    def outputs(self, cluster_id: str) -> dict[str, Any]:
        record = self.pool.known.get(cluster_id)
        return dict(record.outputs) if record else {}

    async def suspend_nodes(self, cluster: ClusterRef) -> None:
        record = await _cloud(self.pool.load, cluster.id)
        if record is None:
            return
        await self._settle(cluster.id, record, lambda: record.stacks.suspend(record.stack_id), "SUSPEND")

    async def destroy_nodes(self, cluster: ClusterRef, nodes: list[str]) -> list[str]:
        """Workers leave by a stack update with fewer of them: the group removes its highest
        members, which must be these nodes (DISCO removes its highest workers)."""
        record = await _cloud(self.pool.load, cluster.id)
        if record is None:
            return []
        have = int((await _cloud(record.stacks.parameters, record.stack_id)).get("worker_count", 0))
        leaving = sorted(_worker_number(name) for name in nodes)
        if leaving != list(range(have - len(leaving) + 1, have + 1)):
            raise ProviderError(f"an OpenStack cluster gives up its highest workers first: cannot remove "
                                f"{', '.join(nodes)} of worker-1..worker-{have}")
        for name in nodes:
            host = record.hosts.pop(name, None)
            if host is not None:
                self.transport.hang_up(host)
        await self._settle(cluster.id, record, lambda: record.stacks.scale(
            record.stack_id, {"worker_count": have - len(leaving)}, self._timeout_mins(None)), "UPDATE")
        return []

    async def destroy_cluster(self, cluster_id: str) -> list[str]:
        if cluster_id in self.pool.never_made and cluster_id not in self.pool.known:
            self.pool.never_made.discard(cluster_id)
            return []
        await self._delete_stack(cluster_id)
        return []

    # -- plan -----------------------------------------------------------------------------------

    def plan(self, request: PlanRequest) -> ProviderPlan:
        """The stack a create would make: the rendered template and its worker template, each
        role's user_data (the node bootstrap), the security group's rules. The cluster's key
        does not exist yet: a stand-in public key is shown as such."""
        choices = read_options(request.options)
        stand_in = generate_key_pair("plan").public_key.strip()
        design = self._design(request.cluster.id, request, choices, stand_in,
                              planned_wheel_ref(self.cache_dir / "wheels"))
        shown = "<the cluster's SSH public key, made at create>"
        template = _replace_text(render(design), stand_in, shown)
        nodes = [PlannedNode(ref.name, None, f"{PREFIX}/clusters/{request.cluster.id}/{ref.name}/work",
                             notes=["address from the stack's network at create",
                                    f"size: flavor {choices.master_flavor if ref.role == 'master' else choices.worker_flavor}"])
                 for ref in request.nodes]
        steps = [
            {"step": "provisioning", "what": f"create Heat stack {stack_name(request.cluster.id)} (the template "
             f"below, worker_count={design.workers}); each server boots its user_data with cloud-init: the node "
             "bootstrap, disco's wheel from the service manager's node payload, then its booted signal with its "
             "SSH host key"},
            {"step": "install", "what": "wait for every node's booted signal, pin each host key, ask each node its "
             "facts over SSH" + (" (the master at its floating IP, the workers through it)"
                                 if choices.floating_ip else " (each at its address on the network)")},
            {"step": "installing", "what": "start each framework's processes over SSH (master, then workers), then "
             "its readiness check"},
            {"step": "ready", "what": "each node signals its ready wait condition (workers, then the master); the "
             "stack completes"},
        ]
        return ProviderPlan(
            nodes=nodes, steps=steps, reachable_from=list(design.sorted_cidrs),
            reach_note="the stack's security group opens SSH, the node log port and the frameworks' ports to "
                       "the allowed CIDRs only, and every port between the cluster's nodes",
            sections={"template": template, "files": render_files(design),
                      "parameters": stack_parameters(design),
                      "user_data": {"master": design.user_data.master, "worker": design.user_data.worker}})

    # -- helpers ----------------------------------------------------------------------------------

    def _record(self, cluster_id: str) -> ClusterStack:
        record = self.pool.load(cluster_id)
        if record is None:
            raise ProviderError(f"cluster {cluster_id} has no stack")
        return record

    async def _create_stack(self, cluster: ClusterRef, request: PlanRequest) -> ClusterStack:
        cloud = self.access.cloud(cluster.id)
        if not cloud:
            raise ProviderError(f"cluster {cluster.id} has no cloud to make its stack in")
        choices = read_options(request.options)
        public_key, private_key = self.access.ssh_key(cluster.id)
        wheel = await asyncio.to_thread(self_wheel, self.cache_dir / "wheels")
        design = self._design(cluster.id, request, choices, public_key, wheel_ref(wheel))
        try:
            stacks = HeatStacks(await asyncio.to_thread(connect, cloud))
            stack_id = await asyncio.to_thread(stacks.create, stack_name(cluster.id), render(design),
                                               stack_parameters(design), self._timeout_mins(request),
                                               render_files(design))
        except (HeatError, *CLOUD_ERRORS) as exc:
            # Refused before anything was made: a delete need not ask the cloud again (which may
            # never answer: an unreachable cloud would keep the cluster from being deleted).
            if isinstance(exc, ks_exc.ConnectFailure) or getattr(exc, "made_nothing", False):
                self.pool.never_made.add(cluster.id)
            raise ProviderError(_cloud_error(exc)) from None
        self.pool.never_made.discard(cluster.id)
        record = ClusterStack(stacks, stack_id, choices.user, private_key, choices.timeout_s, choices.floating_ip)
        self.pool.known[cluster.id] = record
        return record

    def _design(self, cluster_id: str, request: PlanRequest, choices: StackChoices, public_key: str,
                wheel: DiscoWheel) -> StackDesign:
        workers = sum(1 for ref in request.nodes if ref.role == "worker")
        ports = [PortRule(use.port, why=f"{use.framework} {use.name}") for use in request.ports]
        scripts = {role: node_user_data(
            node, render_script(self.node_bundle(cluster_id, node, role, NODE_IP, PREFIX, request.needs, wheel),
                                payload_url=f"{self.public_url}/api/v1/node-payload/{wheel.filename}"),
            authorized_key=public_key if choices.key_name else "", login_user=choices.user)
            for role, node in (("master", "master"), ("worker", NODE_NAME))}
        return stack_design(cluster_id, request.name, choices, public_key, workers, MAX_WORKERS,
                            request.allowed_cidrs, ports, UserData(**scripts))

    @staticmethod
    def _timeout_mins(request: PlanRequest | None) -> int:
        seconds = read_options(request.options).timeout_s if request else 1800
        return math.ceil(seconds / 60) + 15

    async def _wait_nodes(self, cluster_id: str, record: ClusterStack, names: list[str],
                          done: Callable[[StackNode], bool], timeout_s: float, what: str,
                          report: Callable[[str], None] | None = None) -> dict[str, StackNode]:
        """Until every named node is `done` in Heat's eyes; a stack (or a node's boot) that fails
        on the way fails the cluster with Heat's reasons, and the stack is deleted."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = await _cloud(stack_nodes, record.stacks, record.stack_id)
            if all(name in found and done(found[name]) for name in names):
                return found
            state = await _cloud(record.stacks.state, record.stack_id)
            failed_boot = [n for n in found.values() if n.boot_failure]
            if state is None or state.failed or failed_boot:
                await self._fail_stack(cluster_id, record, report)
            if time.monotonic() > deadline:
                waiting = [name for name in names if not (name in found and done(found[name]))]
                await self._fail_stack(cluster_id, record, report,
                                       f"no {what} from {', '.join(waiting)} within {timeout_s:g} s")
            await asyncio.sleep(POLL_S)

    async def _fail_stack(self, cluster_id: str, record: ClusterStack,
                          report: Callable[[str], None] | None, why: str = "") -> None:
        """Heat's reasons become the cluster's, then the stack goes (a retry makes a new one)."""
        try:
            reasons = await _cloud(record.stacks.failures, record.stack_id)
            state = await _cloud(record.stacks.state, record.stack_id)
        except ProviderError:
            reasons, state = [], None
        if report:
            for reason in reasons:
                report(f"Heat: {reason}")
        status = f"stack {stack_name(cluster_id)} {state.status}" if state else f"stack {stack_name(cluster_id)}"
        detail = why or (state.reason if state else "") or "failed"
        message = f"{status}: {'; '.join(reasons[:3]) or detail}"
        try:
            await self._delete_stack(cluster_id)
            message += " (stack deleted)"
        except ProviderError as exc:
            message += f" (deleting it failed too: {exc.message})"
        raise ProviderError(message)

    async def _settle(self, cluster_id: str, record: ClusterStack, change: Callable[[], None], action: str) -> None:
        try:
            await _cloud(change)
            state = await _cloud(record.stacks.wait, record.stack_id, action, SETTLE_TIMEOUT_S)
        except ProviderError as exc:
            raise ProviderError(f"stack {stack_name(cluster_id)}: {action.lower()} failed: {exc.message}") from None
        if state is None or state.failed:
            reasons = await _cloud(record.stacks.failures, record.stack_id) if state else []
            raise ProviderError(f"stack {stack_name(cluster_id)} {state.status if state else 'gone'}: "
                                + ("; ".join(reasons[:3]) or (state.reason if state else "")))

    async def _signal_ready(self, record: ClusterStack, node: str) -> None:
        host = record.hosts.get(node)
        if host is None:
            raise ProviderError(f"{node} has not booted: it cannot signal ready")
        done = await self.transport.acall(self.transport.run(host, as_root(host, [SIGNAL_READY]), timeout_s=120))
        if done.exit_code != 0:
            raise SSHError(f"{host.name}: its ready signal failed (exit {done.exit_code}): {done.stderr[-300:]}")

    def _load_to_delete(self, cluster_id: str) -> ClusterStack | None:
        try:
            return self.pool.load(cluster_id)
        except HeatError as exc:
            if not exc.unusable_entry:
                raise
            # Settings that reach no Heat (the entry is sealed at create, never changed) never
            # made a stack: nothing to delete. An unreachable cloud, though, is asked again.
            log.warning("cluster %s: no stack to delete: %s", cluster_id, exc)
            return None

    async def _delete_stack(self, cluster_id: str) -> None:
        """The stack goes and Heat is asked until it no longer knows it; hosts are let go."""
        try:
            record = await _cloud(self._load_to_delete, cluster_id)
            if record is not None:
                await _cloud(record.stacks.delete, record.stack_id)
        except ProviderError as exc:
            raise ProviderError(f"stack {stack_name(cluster_id)} could not be deleted: {exc.message}") from None
        record = self.pool.known.pop(cluster_id, None)
        for host in (record.hosts.values() if record else []):
            self.transport.hang_up(host)


async def _cloud(call: Callable[..., T], *args: Any) -> T:
    """A call to the cloud, in a thread (openstacksdk blocks); what the cloud or Heat answers
    wrong becomes the cluster's reason, in words."""
    try:
        return await asyncio.to_thread(call, *args)
    except (HeatError, *CLOUD_ERRORS) as exc:
        raise ProviderError(_cloud_error(exc)) from None


def _cloud_error(exc: Exception) -> str:
    if isinstance(exc, HeatError):
        return str(exc)
    return f"the cloud did not answer as it should: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}"


def _worker_number(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def _replace_text(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _replace_text(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_text(v, old, new) for v in value]
    return value
