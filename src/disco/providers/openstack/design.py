"""What a cluster's Heat stack is made of, typed and checked before any template is rendered.

Every check runs at construction and all problems are reported together in one
`StackDesignError`, so a bad request says everything that is wrong with it at once.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from disco.errors import InvalidSpec

# The node's log server (disco.node) and SSH: every node always opens these two.
SSH_PORT = 22
NODE_LOG_PORT = 8084
DEFAULT_CIDR = "10.20.0.0/24"
# Heat's own bounds on a wait condition's timeout (seconds).
MAX_WAIT_TIMEOUT = 43200
# Nova refuses user_data whose base64 form exceeds 65535 bytes; the placeholders grow the
# script by the signal command (a token and a URL, well under 2 KB), so leave room for it.
MAX_USER_DATA_BYTES = 45_000
PROTOCOLS = ("tcp", "udp")
# Neutron's default quota of security group rules per project; a group larger than that
# would fail half-way through a stack create.
MAX_SECURITY_RULES = 100
# The rules every group has besides the open ports (tcp, udp and icmp between the nodes).
INTRA_CLUSTER_RULES = 3
_NAME_CHARACTERS = re.compile(r"[^a-z0-9]+")
_KEY_NAME = re.compile(r"^[A-Za-z0-9_\- .@]{1,255}$")


class StackDesignError(InvalidSpec):
    code = "invalid_stack_design"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid stack design: " + "; ".join(problems), details={"problems": problems})
        self.problems = problems


@dataclass(frozen=True)
class PortRule:
    """Ingress opened from the allowed CIDRs: one port (`last` omitted) or a range."""

    first: int
    last: int | None = None
    protocol: str = "tcp"
    why: str = ""

    def __post_init__(self) -> None:
        if self.last is None:
            object.__setattr__(self, "last", self.first)

    @property
    def label(self) -> str:
        ports = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{ports}/{self.protocol}"

    def problems(self) -> list[str]:
        found = []
        for bound in dict.fromkeys((self.first, self.last)):
            if not isinstance(bound, int) or isinstance(bound, bool) or not 1 <= bound <= 65535:
                found.append(f"port {bound!r} ({self.why or 'no reason given'}) is not in 1..65535")
        if not found and self.first > self.last:  # type: ignore[operator]
            found.append(f"port range {self.first}-{self.last} ends before it starts")
        if self.protocol not in PROTOCOLS:
            found.append(f"port {self.first}: protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if not self.why.strip():
            found.append(f"port {self.first}/{self.protocol}: say why it is open (`why`)")
        return found


ALWAYS_OPEN = (PortRule(SSH_PORT, why="SSH"), PortRule(NODE_LOG_PORT, why="node log server"))


@dataclass(frozen=True)
class NewNetwork:
    """A network, subnet and router made for the cluster (the router's gateway is the
    external network)."""

    cidr: str = DEFAULT_CIDR
    dns_nameservers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExistingNetwork:
    """A network of the user's, by name or id, already routed wherever the nodes must reach."""

    name: str


@dataclass(frozen=True)
class GeneratedKey:
    """A key pair DISCO made (keys.py): its public half, OpenSSH format, becomes a Nova key pair."""

    public_key: str


@dataclass(frozen=True)
class ExistingKey:
    """A Nova key pair the user already has, by name."""

    name: str


@dataclass(frozen=True)
class UserData:
    """Each role's boot script, opaque to the template except for its placeholders
    (template.PLACEHOLDERS)."""

    master: str = ""
    worker: str = ""


@dataclass(frozen=True)
class StackDesign:
    cluster_id: str
    cluster_name: str
    master_image: str
    master_flavor: str
    worker_image: str
    worker_flavor: str
    key: GeneratedKey | ExistingKey
    workers: int = 0
    max_workers: int = 64
    network: NewNetwork | ExistingNetwork = field(default_factory=NewNetwork)
    # The router's gateway and the floating IP's pool; needed by either.
    external_network: str = ""
    floating_ip: bool = True
    # Who may reach the open ports. Empty (the default) lets nothing from outside the cluster
    # in: the provider must name the service manager's address and the users' networks.
    allowed_cidrs: tuple[str, ...] = ()
    # The frameworks' declared ports; SSH and the node log port are added (ALWAYS_OPEN).
    ports: tuple[PortRule, ...] = ()
    user_data: UserData = field(default_factory=UserData)
    wait_timeout: int = 1800

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise StackDesignError(problems)

    @property
    def name_prefix(self) -> str:
        """Starts every name the stack gives a cloud resource: short, readable and unique
        per cluster (its name's first letters and its id's first eight characters)."""
        ascii_name = unicodedata.normalize("NFKD", self.cluster_name).encode("ascii", "ignore").decode()
        readable = _NAME_CHARACTERS.sub("-", ascii_name.lower()).strip("-")[:16].strip("-")
        short_id = _NAME_CHARACTERS.sub("", self.cluster_id.lower())[:8]
        return "-".join(part for part in ("disco", readable, short_id) if part)

    @property
    def open_ports(self) -> tuple[PortRule, ...]:
        """ALWAYS_OPEN and the declared ports, each (range, protocol) once, in a stable order;
        a port declared twice keeps every reason."""
        merged: dict[tuple[str, int, int], list[str]] = {}
        for rule in (*ALWAYS_OPEN, *self.ports):
            reasons = merged.setdefault((rule.protocol, rule.first, rule.last), [])  # type: ignore[arg-type]
            if rule.why not in reasons:
                reasons.append(rule.why)
        return tuple(PortRule(first, last, protocol, ", ".join(reasons))
                     for (protocol, first, last), reasons in sorted(merged.items()))

    @property
    def sorted_cidrs(self) -> tuple[str, ...]:
        networks = {ipaddress.ip_network(cidr) for cidr in self.allowed_cidrs}
        return tuple(str(net) for net in sorted(networks, key=lambda net: (net.version, net)))


def _problems(design: StackDesign) -> list[str]:
    found: list[str] = []
    for label, value in (("cluster id", design.cluster_id), ("cluster name", design.cluster_name),
                         ("master image", design.master_image), ("master flavor", design.master_flavor),
                         ("worker image", design.worker_image), ("worker flavor", design.worker_flavor)):
        if not isinstance(value, str) or not value.strip():
            found.append(f"{label} is empty")
    if isinstance(design.cluster_id, str) and design.cluster_id.strip() \
            and not _NAME_CHARACTERS.sub("", design.cluster_id.lower()):
        found.append(f"cluster id {design.cluster_id!r} has no letter or digit")
    found += _count_problems(design)
    found += _network_problems(design)
    found += _access_problems(design)
    found += _key_problems(design.key)
    found += _user_data_problems(design.user_data)
    return found


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count_problems(design: StackDesign) -> list[str]:
    found = []
    if not _is_int(design.max_workers) or design.max_workers < 0:
        found.append(f"max workers {design.max_workers!r} is not a whole number ≥ 0")
    elif not _is_int(design.workers) or not 0 <= design.workers <= design.max_workers:
        found.append(f"workers {design.workers!r} is not in 0..{design.max_workers}")
    if not _is_int(design.wait_timeout) or not 1 <= design.wait_timeout <= MAX_WAIT_TIMEOUT:
        found.append(f"wait timeout {design.wait_timeout!r} s is not in 1..{MAX_WAIT_TIMEOUT}")
    return found


def _network_problems(design: StackDesign) -> list[str]:
    found = []
    network = design.network
    if isinstance(network, NewNetwork):
        found += _subnet_problems(network, design.max_workers)
    elif isinstance(network, ExistingNetwork):
        if not isinstance(network.name, str) or not network.name.strip():
            found.append("the existing network's name is empty")
    else:
        found.append(f"network must be a NewNetwork or an ExistingNetwork, not {network!r}")
    needs_external = isinstance(network, NewNetwork) or design.floating_ip
    if needs_external and (not isinstance(design.external_network, str) or not design.external_network.strip()):
        why = "the router's gateway" if isinstance(network, NewNetwork) else "the floating IP"
        found.append(f"external network is empty; {why} needs it")
    return found


def _subnet_problems(network: NewNetwork, max_workers: int) -> list[str]:
    try:
        subnet = ipaddress.ip_network(network.cidr)
    except (ValueError, TypeError) as error:
        return [f"network CIDR {network.cidr!r} is not valid: {error}"]
    found = []
    if subnet.version != 4:
        found.append(f"network CIDR {network.cidr} is not IPv4")
    # The network and broadcast addresses, the gateway and the DHCP port take four.
    elif _is_int(max_workers) and subnet.num_addresses - 4 < max_workers + 1:
        found.append(f"network CIDR {network.cidr} has room for {max(subnet.num_addresses - 4, 0)} "
                     f"nodes, fewer than the master and {max_workers} workers")
    for server in network.dns_nameservers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            found.append(f"DNS nameserver {server!r} is not an IP address")
    return found


def _access_problems(design: StackDesign) -> list[str]:
    found = []
    if isinstance(design.allowed_cidrs, str):
        return [f"allowed CIDRs must be a list, not the string {design.allowed_cidrs!r}"]
    for cidr in design.allowed_cidrs:
        try:
            ipaddress.ip_network(cidr)
        except (ValueError, TypeError) as error:
            found.append(f"allowed CIDR {cidr!r} is not valid: {error}")
    for rule in design.ports:
        if not isinstance(rule, PortRule):
            found.append(f"port {rule!r} is not a PortRule")
        else:
            found += rule.problems()
    if not found:
        rules = len(design.open_ports) * len(set(design.allowed_cidrs)) + INTRA_CLUSTER_RULES
        if rules > MAX_SECURITY_RULES:
            found.append(f"{len(design.open_ports)} open ports × {len(set(design.allowed_cidrs))} allowed CIDRs "
                         f"make {rules} security group rules, more than Neutron's default quota of "
                         f"{MAX_SECURITY_RULES}: use fewer CIDRs or port ranges")
    return found


def _key_problems(key: object) -> list[str]:
    if isinstance(key, ExistingKey):
        if not isinstance(key.name, str) or not _KEY_NAME.match(key.name):
            return [f"key pair name {key.name!r} is not a valid Nova key pair name"]
        return []
    if isinstance(key, GeneratedKey):
        try:
            load_ssh_public_key(key.public_key.strip().encode())
        except (ValueError, TypeError, AttributeError, UnsupportedAlgorithm) as error:
            return [f"the public key is not an OpenSSH public key: {error}"]
        return []
    return [f"key must be a GeneratedKey or an ExistingKey, not {type(key).__name__}"]


def _user_data_problems(user_data: UserData) -> list[str]:
    found = []
    for role in ("master", "worker"):
        script = getattr(user_data, role)
        if not isinstance(script, str):
            found.append(f"{role} user_data must be text")
        elif len(script.encode()) > MAX_USER_DATA_BYTES:
            found.append(f"{role} user_data is {len(script.encode())} bytes; at most "
                         f"{MAX_USER_DATA_BYTES} fit Nova's 64 KiB limit once base64-encoded")
    return found
