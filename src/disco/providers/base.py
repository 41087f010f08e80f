"""The small interface every infrastructure provider implements.

A provider turns node names into hosts and runs named processes on them. It knows
nothing of frameworks, readiness or the database: the lifecycle reconciler decides what
should run where, and asks again after a restart (every call is idempotent).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from disco.errors import ProviderError  # noqa: F401  (re-exported: what a provider raises)


@dataclass(frozen=True)
class ProviderResources:
    """What the service manager lends a provider when it makes one: its directories, and for
    providers whose nodes are hosts of a pool, that pool (an object with the provider's own
    protocol: the provider never sees the database behind it)."""

    data_dir: Path
    cache_dir: Path
    host_pool: Any = None
    # Where remote nodes take Python packages from on a private network (else the index
    # their pip is configured with).
    node_index_url: str = ""
    node_wheelhouse: str = ""
    # For providers that act for a cluster long after its request (a cloud): what the service
    # manager keeps sealed for each cluster, behind the ClusterAccess protocol.
    cluster_access: Any = None
    # Where nodes reach the service manager (disco's wheel: GET /api/v1/node-payload/…).
    public_url: str = ""


class ClusterAccess(Protocol):
    """What a provider may ask the service manager about a cluster it holds."""

    def cloud(self, cluster_id: str) -> dict[str, Any] | None:
        """The cluster's cloud (a clouds.yaml entry), opened for this one use; None if it has none."""

    def ssh_key(self, cluster_id: str) -> tuple[str, str]:
        """The cluster's own SSH key pair: (OpenSSH public line, private key text)."""

    def options(self, cluster_id: str) -> dict[str, str]:
        """The cluster's provider options (as its spec gives them)."""


@dataclass(frozen=True)
class ClusterRef:
    id: str
    slot: int


@dataclass(frozen=True)
class NodeRef:
    name: str
    role: str
    index: int


@dataclass(frozen=True)
class NodeAddress:
    name: str
    host: str
    # Where the node keeps its files, as a path on that node.
    workdir: str


@dataclass(frozen=True)
class Launch:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # Python modules the process imports anyway; a provider may import them ahead of time,
    # then call the `after_fork` functions ("module:function") once the process has its env.
    preload: tuple[str, ...] = ()
    after_fork: tuple[str, ...] = ()
    # Files the process reads (certificates, config with secrets): path relative to the node's
    # workdir -> text. Written before the process starts, readable by the process's user only.
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str
    dest: str
    # Apache publishes SHA-512 only: one of the two is given, the other is "".
    sha512: str = ""
    # A .tar.gz unpacked into the directory `dest`.
    unpack: bool = False


@dataclass(frozen=True)
class NodeCapacity:
    """What a node has to offer its processes: the flavor's RAM and vCPUs on a cloud, the
    host's on SSH, a fair share of this machine on the local provider. Templates see it as
    node.memory_mb and node.cpus (frameworks size their daemons from it)."""

    memory_bytes: int
    cpus: int

    @property
    def memory_mb(self) -> int:
        return self.memory_bytes // (1 << 20)


@dataclass(frozen=True)
class NodeNeeds:
    """What a host made from scratch must have before a cluster's processes run there: OS
    packages, Python requirements ("name==version") and checked downloads. No secrets."""

    os_packages: tuple[str, ...] = ()
    python_requirements: tuple[str, ...] = ()
    downloads: tuple[Download, ...] = ()
    # SHA-256 of the cluster's token: the node's log server lets in whoever shows the token.
    log_token_sha256: str = ""


@dataclass(frozen=True)
class NodeFacts:
    """Where things are on a node, for rendering its commands (`python`, `module_dir()`)."""

    python: str
    site_packages: str
    bin_dir: str
    # The node's software prefix (downloads land under it), and what the host has to offer.
    prefix: str = ""
    capacity: NodeCapacity | None = None


@dataclass(frozen=True)
class PortUse:
    """A port a cluster's nodes of `role` listen on (a framework's declared port)."""

    framework: str
    name: str
    port: int
    role: str
    scheme: str = "tcp"


@dataclass(frozen=True)
class PlanRequest:
    """What a provider is told when asked what a create would make (`Provider.plan`). Nothing
    exists yet: `cluster.id` is a placeholder, `cluster.slot` the slot a create would get now."""

    cluster: ClusterRef
    # The cluster's name (the spec's, else the one a create would choose from its id).
    name: str
    nodes: list[NodeRef]
    options: dict[str, str]
    # What every node must have installed; log_token_sha256 is a placeholder (no token yet).
    needs: NodeNeeds
    ports: list[PortUse]
    allowed_cidrs: list[str]


@dataclass
class PlannedNode:
    """Where a node would be. `host` None: the provider assigns it only at create (the plan
    shows a placeholder); `capacity` None: its size is known only once it exists."""

    name: str
    host: str | None
    workdir: str
    capacity: NodeCapacity | None = None
    facts: NodeFacts | None = None
    notes: list[str] = field(default_factory=list)
    # Provider-specific, shown as given (SSH: the pool host; its bootstrap script and bundle).
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProviderPlan:
    """A provider's part of a plan: its nodes, its steps in order, who may reach the ports, and
    anything of its own (`sections`: a provider that renders a template puts it under
    "template"). Free of secrets: nothing made for the cluster exists yet."""

    nodes: list[PlannedNode]
    steps: list[dict[str, str]]
    reachable_from: list[str]
    reach_note: str = ""
    sections: dict[str, Any] = field(default_factory=dict)


class ProcessState(enum.Enum):
    RUNNING = "running"
    EXITED = "exited"
    MISSING = "missing"


@dataclass(frozen=True)
class ProcessStatus:
    state: ProcessState
    exit_code: int | None = None
    pid: int | None = None


class Provider(ABC):
    """Infrastructure for clusters. Every method may be called again after a crash."""

    name: str = ""
    # Whether nodes are other machines, which take DISCO's code from its wheel (and what it
    # carries: framework files, built Java support) rather than from this installation.
    remote: bool = False
    # The JSON schema of the `provider_options` check_options takes, published in the create
    # body's schema (it must refuse exactly what this refuses). By default any map of strings.
    # A schema that refuses {} says so with a minProperties above 0: the create body must then
    # hold provider_options (a schema cannot apply to a field left out).
    options_schema: ClassVar[dict[str, Any]] = {"type": "object", "additionalProperties": {"type": "string"}}
    # How long create_nodes may take before the cluster fails. A cloud whose servers take
    # minutes to get their addresses says so: its own waits must end first, with its reasons.
    provision_timeout_s: ClassVar[float] = 120.0

    @classmethod
    @abstractmethod
    def from_resources(cls, resources: ProviderResources) -> "Provider":
        """Make the provider from what the service manager lends it (every provider says how)."""

    @abstractmethod
    async def create_nodes(self, cluster: ClusterRef, nodes: list[NodeRef],
                           request: PlanRequest | None = None) -> list[NodeAddress]:
        """Make (or find again) the hosts for these nodes. `request` says what the cluster is
        (its options, what nodes must install, its ports); given whenever nodes may be made
        (providers that make hosts from it, a cloud's stack, need it; None when only finding
        nodes that exist)."""

    async def prepare_nodes(self, cluster: ClusterRef, nodes: list[NodeAddress], needs: NodeNeeds,
                            report: Callable[[str], None] | None = None) -> dict[str, NodeFacts]:
        """Install what the nodes need (idempotent), telling `report` how each step went;
        where things are on each node. A provider whose nodes run beside the service manager
        has it all already and answers {} (the service manager's own paths hold)."""
        return {}

    @abstractmethod
    async def start_process(self, cluster: ClusterRef, node: NodeAddress, launch: Launch) -> int:
        """Start `launch` on the node unless a process of that name already runs there; its pid."""

    @abstractmethod
    async def process_status(self, cluster: ClusterRef, node: str, process: str) -> ProcessStatus:
        """Whether a named process runs on a node, and how it ended if it does not."""

    @abstractmethod
    async def stop_node(self, cluster: ClusterRef, node: str, grace_s: float) -> None:
        """Stop every process on the node, newest first: SIGTERM, then SIGKILL after grace_s."""

    @abstractmethod
    async def destroy_nodes(self, cluster: ClusterRef, nodes: list[str]) -> list[str] | None:
        """Release the hosts of stopped nodes, leaving nothing of them behind; notes on what
        could not be done and is left to an admin (e.g. a host that could not be reached)."""

    @abstractmethod
    async def destroy_cluster(self, cluster_id: str) -> list[str] | None:
        """Remove everything the provider holds for a cluster: processes, hosts, files; notes
        as for destroy_nodes."""

    @abstractmethod
    def cluster_ids(self) -> set[str]:
        """Ids of every cluster that has anything on this infrastructure (for orphan sweeps)."""

    @abstractmethod
    async def run_command(self, cluster: ClusterRef, node: NodeAddress, argv: list[str],
                          env: dict[str, str], timeout_s: float) -> tuple[int, str]:
        """Run a short command on a node; its exit code and output."""

    @abstractmethod
    def log_names(self, cluster_id: str) -> list[tuple[str, str]]:
        """(node, process) pairs that have a log."""

    @property
    def isolates_tenants(self) -> bool:
        """Whether clusters of different tenants are kept from each other's (and the service
        manager's) files and processes. A provider that cannot promise it serves one tenant."""
        return True

    def slot_free(self, slot: int) -> bool:
        """Whether a cluster slot may be handed out (nothing of an earlier cluster still holds
        its addresses). Providers whose hosts are made anew need not check."""
        return True

    def owns_listener(self, cluster_id: str, host: str, port: int) -> bool | None:
        """Whether what listens on host:port is a process of this cluster; None when the
        provider cannot tell (remote hosts: their addresses are the cluster's own)."""
        return None

    def check_options(self, options: dict[str, str]) -> None:
        """Refuse (InvalidSpec) provider options this provider does not understand or that
        cannot work; called before a cluster is recorded."""

    def check_capacity(self, options: dict[str, str], more_nodes: int) -> None:
        """Refuse (Conflict) a create or scale-up that needs more nodes than can be had now."""

    async def node_facts(self, cluster: ClusterRef, node: str) -> NodeFacts | None:
        """Where software is on a node that was prepared before (asked again after a restart of
        the service manager); None where the service manager's own paths hold."""
        return None

    def node_capacity(self, cluster: ClusterRef, node: str, nodes_in_cluster: int) -> NodeCapacity | None:
        """What a node offers when its facts do not say (providers whose nodes share this
        machine); None when unknown."""
        return None

    def plan(self, request: PlanRequest) -> ProviderPlan:
        """What a create would make on this infrastructure, touching nothing: no host taken, no
        file written, no process started (`disco cluster plan`, `POST …/clusters?dry_run=true`).
        Called after check_options and check_capacity accepted the request. Providers without
        a plan of their own answer nodes whose hosts come at create, and the lifecycle's steps."""
        return ProviderPlan(
            nodes=[PlannedNode(n.name, None, "{workdir}", notes=["host assigned at create"]) for n in request.nodes],
            steps=[{"step": "provisioning", "what": f"make {len(request.nodes)} node(s)"},
                   {"step": "installing", "what": "start each framework's processes (master, then workers), "
                                                 "then its readiness check"}],
            reachable_from=list(request.allowed_cidrs),
            reach_note=f"provider {self.name} describes no network rules of its own")

    async def nodes_ready(self, cluster: ClusterRef, nodes: list[NodeAddress],
                          report: Callable[[str], None] | None = None) -> None:
        """Every framework of the cluster is ready on these nodes (a create, a scale-up, a
        resume): providers that wait for it (a stack's wait conditions) hear it here."""

    async def suspend_nodes(self, cluster: ClusterRef) -> None:
        """The cluster's processes are stopped for a suspend: keep the nodes, idle (a stack
        suspend). `create_nodes` brings suspended nodes back."""

    def outputs(self, cluster_id: str) -> dict[str, Any]:
        """What the provider adds to a ready cluster's outputs (a stack's id, status, external IP)."""
        return {}

    async def warm(self, preloads: set[tuple[str, ...]]) -> None:
        """Get ready to start processes that import these module sets (optional)."""

    def close(self) -> None:
        """Release what the provider holds for itself (clusters keep running)."""

    @abstractmethod
    def read_log(self, cluster_id: str, node: str, process: str, offset: int = 0,
                 limit: int = 1 << 20) -> bytes:
        """Bytes of a process log from `offset`; empty when there is nothing more."""
